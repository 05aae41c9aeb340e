"""Media of conversation messages (issue 20).

Receiving: an inbound image / voice / video / file message is recorded with ``media_status``
``pending`` and a download task is scheduled after commit. ``message_media_fetch`` makes one
attempt: the platform's download API (GeWe ``downloadImage``/``downloadVoice``/``downloadVideo``/
``downloadFile``, E云 ``getMsgImg``/``getMsgVoice``/...) gives a URL, the bytes are fetched
(bounded by ``MEDIA_INBOUND_MAX_BYTES``) and stored through ``apps.media``; the message links
the file (``ready``). Transient failures retry with exponential backoff and jitter up to
``MEDIA_DOWNLOAD_MAX_ATTEMPTS``; a failure for good sets ``failed`` and the reason, shown as
"媒体获取失败" in the thread. The message itself is never touched otherwise, never lost.

Idempotent: only a ``pending`` message is attempted, each attempt claims it with a conditional
update of ``media_attempts`` (two workers never fetch the same attempt), and the file is linked
with a conditional update (a second download of the same message is discarded).

Sending: ``platform_media_url`` is the URL a platform fetches a stored file from (signed,
expiring, on ``PUBLIC_BASE_URL``), computed at call time so a queued message never carries a
stale signature.
"""

from __future__ import annotations

import logging
import random

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Message
from apps.core import realtime
from apps.integrations.clients import errors as client_errors

logger = logging.getLogger(__name__)

MEDIA_KINDS = (Message.Kind.IMAGE, Message.Kind.VOICE, Message.Kind.VIDEO, Message.Kind.FILE)


# -- payloads ------------------------------------------------------------------------------


def media_payload(message: Message) -> dict | None:
    """The media part of a message in API answers and WebSocket events (None: no media).

    ``url`` is the members' org-checked URL of the bytes; ``status`` is ``pending``, ``ready``
    or ``failed`` (then ``error`` says why)."""
    if not message.media_file_id and not message.media_status:
        return None
    data: dict = {"status": message.media_status or Message.MediaStatus.READY, "error": ""}
    if message.media_status == Message.MediaStatus.FAILED:
        data["error"] = message.media_error
    media = message.media_file if message.media_file_id else None
    if media is not None:
        data.update(
            id=media.pk,
            kind=media.kind,
            name=media.original_name,
            size=media.size,
            content_type=media.content_type,
            url=reverse("media-file-content", kwargs={"pk": media.pk}) + f"?org={media.org_id}",
        )
    return data


def _push(message: Message) -> None:
    realtime.push_on_commit(
        "message_media_update",
        {
            "message_id": message.pk,
            "conversation_id": message.conversation_id,
            "media": media_payload(message),
        },
        groups=[
            realtime.group_for_conversation(message.org_id, message.conversation_id),
            realtime.group_for_conversations(message.org_id),
        ],
    )


# -- receiving -----------------------------------------------------------------------------


def inbound_media_expected(message: Message) -> bool:
    """A received media message the platform lets us download (its XML and id were kept)."""
    return message.kind in MEDIA_KINDS and bool((message.payload or {}).get("download"))


def schedule_fetch(*, org_id: int, message_id: int, countdown: float = 0.0) -> bool:
    """Enqueue a download attempt. Under eager Celery (unit tests) a delayed retry is not run
    inline (it would recurse): tests call ``message_media_fetch`` again themselves."""
    from apps.conversations.tasks import message_media_fetch as fetch_task

    if settings.CELERY_TASK_ALWAYS_EAGER and countdown > 0:
        return False
    fetch_task.apply_async(
        kwargs={"org_id": org_id, "message_id": message_id}, countdown=max(0.0, countdown)
    )
    return True


def _backoff(attempts: int) -> float:
    base = settings.MEDIA_DOWNLOAD_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    delay = min(settings.MEDIA_DOWNLOAD_RETRY_MAX_SECONDS, base)
    return delay + random.uniform(0, delay * 0.25)


def _file_name(message: Message, download: dict) -> str:
    meta = message.payload or {}
    name = (meta.get("file") or {}).get("name") or download.get("name") or message.text
    if message.kind == Message.Kind.FILE and name:
        return name
    return f"{message.kind}-{message.platform_msg_id or message.pk}"


def message_media_fetch(*, org_id: int, message_id: int) -> str:
    """One download attempt of a received media message (see the module docstring).

    Returns ``ready``, ``retry``, ``failed`` or ``skipped``. Runs outside a transaction: the
    platform calls are network I/O.
    """
    from apps.wechat_accounts.platform import client_for_account

    message = (
        Message.objects.select_related("account", "account__connection")
        .filter(org_id=org_id, pk=message_id)
        .first()
    )
    if message is None or message.account is None:
        logger.info("media: message %s of org %s is gone", message_id, org_id)
        return "skipped"
    if message.media_status != Message.MediaStatus.PENDING or message.media_file_id:
        return "skipped"
    attempts = message.media_attempts + 1
    claimed = Message.objects.filter(
        pk=message.pk,
        media_status=Message.MediaStatus.PENDING,
        media_attempts=message.media_attempts,
    ).update(media_attempts=F("media_attempts") + 1)
    if not claimed:
        return "skipped"  # another worker took this attempt
    download = (message.payload or {}).get("download") or {}
    account = message.account
    try:
        client = client_for_account(account)
        url = client.download_media(
            account.device_id,
            kind=message.kind,
            msg_id=str(download.get("msg_id") or ""),
            xml=str(download.get("xml") or ""),
            meta=download,
        )
        data = client.fetch_media(
            url,
            max_bytes=settings.MEDIA_INBOUND_MAX_BYTES,
            timeout=(5.0, settings.MEDIA_DOWNLOAD_TIMEOUT_SECONDS),
        )
    except client_errors.IntegrationError as exc:
        reason = f"{type(exc).__name__}: {exc}"[:300]
        transient = exc.retryable or isinstance(exc, client_errors.AccountOffline)
        if transient and attempts < settings.MEDIA_DOWNLOAD_MAX_ATTEMPTS:
            Message.objects.filter(pk=message.pk).update(
                media_error=reason, updated_at=timezone.now()
            )
            schedule_fetch(org_id=org_id, message_id=message.pk, countdown=_backoff(attempts))
            return "retry"
        return _fail(message, reason)
    except Exception as exc:  # noqa: BLE001 - a broken row must not retry forever
        logger.exception("media: download of message %s failed", message.pk)
        return _fail(message, f"{type(exc).__name__}: {exc}"[:300])
    return _store(message, data, _file_name(message, download), account)


def _store(message: Message, data: bytes, name: str, account) -> str:
    from apps.core.exceptions import ApplicationError
    from apps.media import storage
    from apps.media.services import media_file_create

    try:
        with transaction.atomic():
            media = media_file_create(
                org=message.org,
                content=data,
                name=name,
                source="inbound",
                origin=f"{account.connection.provider} download of message {message.pk}",
                max_bytes=settings.MEDIA_INBOUND_MAX_BYTES,
                enforce_allow_list=False,
            )
            linked = Message.objects.filter(
                pk=message.pk, media_status=Message.MediaStatus.PENDING, media_file__isnull=True
            ).update(
                media_file=media,
                media_status=Message.MediaStatus.READY,
                media_error="",
                updated_at=timezone.now(),
            )
            if not linked:
                transaction.set_rollback(True)
    except ApplicationError as exc:  # empty or too large: nothing to retry
        return _fail(message, exc.message)
    if not linked:
        storage.delete(media.storage_key)  # another attempt linked its copy first
        return "skipped"
    message.refresh_from_db()
    _push(message)
    return "ready"


def _fail(message: Message, reason: str) -> str:
    updated = Message.objects.filter(
        pk=message.pk, media_status=Message.MediaStatus.PENDING
    ).update(
        media_status=Message.MediaStatus.FAILED,
        media_error=(reason or _("unknown error"))[:300],
        updated_at=timezone.now(),
    )
    if updated:
        message.refresh_from_db()
        _push(message)
        logger.warning("media: giving up on message %s: %s", message.pk, reason)
        return "failed"
    return "skipped"


def message_media_retry(*, org_id: int, message_id: int) -> Message:
    """Try a failed download again (an agent's "retry" on 媒体获取失败)."""
    from apps.core.exceptions import ConflictError, NotFoundError

    message = Message.objects.filter(org_id=org_id, pk=message_id).first()
    if message is None:
        raise NotFoundError(_("Message not found."))
    if message.media_status != Message.MediaStatus.FAILED or not inbound_media_expected(message):
        raise ConflictError(_("Only a failed media download can be retried."))
    Message.objects.filter(pk=message.pk, media_status=Message.MediaStatus.FAILED).update(
        media_status=Message.MediaStatus.PENDING, media_attempts=0, media_error=""
    )
    transaction.on_commit(lambda: schedule_fetch(org_id=org_id, message_id=message_id))
    message.refresh_from_db()
    return message


# -- sending -------------------------------------------------------------------------------


def platform_media_url(message: Message) -> str:
    """The URL the platform fetches this message's file from: signed and expiring for a stored
    file, or the plain ``media_url`` a caller gave."""
    if message.media_file_id:
        from apps.media.signing import platform_url

        return platform_url(message.media_file)
    return message.media_url


def video_thumb_url() -> str:
    """The public cover image of a video sent without a thumbnail."""
    return f"{settings.PUBLIC_BASE_URL}{reverse('media:video-cover')}"


def media_fetch_recover(*, now=None, limit: int = 500) -> int:
    """Periodic (all organisations): re-enqueue downloads still ``pending`` long after their
    last attempt or backoff should have run (a lost broker task, a worker killed mid-retry).
    Duplicates are harmless: each attempt claims the message first."""
    from datetime import timedelta

    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.MEDIA_DOWNLOAD_RETRY_MAX_SECONDS * 2)
    rows = list(
        Message.objects.filter(media_status=Message.MediaStatus.PENDING, updated_at__lt=stale)
        .order_by("updated_at")
        .values_list("org_id", "pk")[:limit]
    )
    for org_id, message_id in rows:
        Message.objects.filter(pk=message_id, media_status=Message.MediaStatus.PENDING).update(
            updated_at=now
        )
        schedule_fetch(org_id=org_id, message_id=message_id)
    return len(rows)
