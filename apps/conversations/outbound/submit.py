"""``send``: validate and queue one outbound message in its conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Conversation, Message
from apps.conversations.outbound.queue import (
    KINDS,
    MEDIA_KINDS,
    _push_status,
    dispatch,
    inline_requested,
)
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.orgs.models import Organization
from apps.wechat_accounts.models import Contact, WeChatAccount
from apps.wechat_accounts.send_policy import human_delay
from apps.wechat_accounts.services import contact_upsert

# -- send ----------------------------------------------------------------------------------


def _validate(
    kind: str, text: str, url: str, file_name: str, title: str, has_media: bool = False
) -> dict[str, list]:
    errors: dict[str, list] = {}
    if kind not in KINDS:
        errors["kind"] = [_("Use one of: text, image, file, video, link.")]
    elif kind == Message.Kind.TEXT and not text.strip():
        errors["text"] = [_("A text message needs text.")]
    elif kind == Message.Kind.LINK and not url:
        errors["url"] = [_("This kind of message needs a URL.")]
    elif kind in MEDIA_KINDS and not (url or has_media):
        errors["url"] = [_("This kind of message needs a URL or an uploaded file.")]
    if has_media and kind not in MEDIA_KINDS:
        errors["media"] = [_("Only image, file and video messages carry a file.")]
    if kind == Message.Kind.FILE and url and not file_name and not has_media:
        file_name = url.rstrip("/").rsplit("/", 1)[-1]
        if not file_name:
            errors["file_name"] = [_("A file needs a file name.")]
    if kind == Message.Kind.LINK and url and not (title or text):
        errors["title"] = [_("A link needs a title.")]
    return errors


def conversation_for(
    *, org: Organization, account: WeChatAccount, contact: Contact
) -> Conversation:
    """The conversation of (account, contact), created on first use (race-safe)."""
    conversation = Conversation.objects.filter(org=org, account=account, contact=contact).first()
    if conversation is not None:
        return conversation
    try:
        with transaction.atomic():
            conversation = Conversation(org=org, account=account, contact=contact)
            conversation.full_clean(validate_constraints=False)
            conversation.save()
            return conversation
    except IntegrityError:
        return Conversation.objects.get(org=org, account=account, contact=contact)


def conversation_for_locked(
    *, org: Organization, account: WeChatAccount, contact: Contact
) -> Conversation:
    """The conversation of (account, contact) under its row lock (lock 4 of
    ``apps.conversations.locking``), created on first use (race-safe): one statement when it
    exists. Call inside a transaction; ``account`` and ``contact`` are this transaction's rows
    and are attached as they are (no join)."""
    locked = Conversation.objects.select_for_update(of=("self",))
    conversation = locked.filter(org=org, account=account, contact=contact).first()
    if conversation is None:
        try:
            with transaction.atomic():
                conversation = Conversation(org=org, account=account, contact=contact)
                conversation.full_clean(validate_constraints=False)
                conversation.save()  # this transaction's own row: nobody else can lock it
        except IntegrityError:  # created concurrently: wait for it like any other writer
            conversation = locked.get(org=org, account=account, contact=contact)
    conversation.org, conversation.account, conversation.contact = org, account, contact
    return conversation


@transaction.atomic
def send(
    *,
    org: Organization,
    account: WeChatAccount,
    to_wxid: str,
    kind: str = Message.Kind.TEXT,
    text: str = "",
    url: str = "",
    file_name: str = "",
    title: str = "",
    description: str = "",
    thumb_url: str = "",
    at_wxids: list[str] | None = None,
    sender_kind: str = Message.SenderKind.SYSTEM,
    sender_user=None,
    urgent: bool = False,
    not_before: datetime | None = None,
    client_msg_id: str = "",
    conversation: Conversation | None = None,
    media_file=None,
    duration_s: int = 0,
    message_fields: dict[str, Any] | None = None,
    touch_conversation: bool = True,
    push_queued: bool = True,
) -> Message:
    """Queue one outbound message and return it at once (state ``queued``).

    ``kind`` text (``text``, optional ``at_wxids`` for group mentions), image (``url``), file
    (``url`` + ``file_name``) or link (``url`` + ``title``/``description``/``thumb_url``).
    Image, file and video may carry a stored ``media_file`` (apps.media) instead of a URL: the
    platform then gets a signed, expiring URL made at send time (``duration_s`` and
    ``thumb_url`` for videos).
    ``client_msg_id`` is an idempotency key: sending again with the same key returns the first
    message. ``urgent`` sends ignore quiet hours; ``not_before`` schedules. Raises
    ``ApplicationError`` (400, with field errors) on invalid input, ``NotFoundError`` when the
    account is not this organisation's.

    With ``conversation`` the caller holds the conversation's row lock: its contact is the
    recipient when the wxid matches, and a used ``client_msg_id`` is found by the insert's
    unique constraint instead of a lookup first. ``message_fields`` are stored with the message
    (AI usage); ``touch_conversation=False`` leaves the conversation's new ``last_message_at``
    on the object for the caller's own save. ``push_queued=False``: the caller pushes the new
    message itself (``new_message`` carries its ``queued`` state), so no status push.
    """
    if account.org_id != org.pk:
        raise NotFoundError(_("WeChat account not found."))
    to_wxid = (to_wxid or "").strip()
    errors = _validate(
        kind, text or "", url or "", file_name or "", title or "", media_file is not None
    )
    if media_file is not None and not errors:
        from apps.media.services import media_kind_check

        if media_file.org_id != org.pk:
            errors["media"] = [_("Unknown file.")]
        else:
            try:
                media_kind_check(media=media_file, kind=kind)
            except ApplicationError as exc:
                errors["media"] = [exc.message]
        file_name = file_name or media_file.original_name
    if not to_wxid:
        errors["to"] = [_("Give the recipient's wxid.")]
    if errors:
        raise ApplicationError(_("The message is not valid."), fields=errors)
    if kind == Message.Kind.FILE and not file_name:
        file_name = url.rstrip("/").rsplit("/", 1)[-1]
    if kind == Message.Kind.VIDEO:
        payload_video = {"duration_s": max(0, int(duration_s or 0)), "thumb_url": thumb_url}
    else:
        payload_video = {}
    if account.status in (WeChatAccount.Status.BANNED,):
        raise ConflictError(_("This WeChat account is banned and cannot send."))
    if client_msg_id and conversation is None:
        existing = Message.objects.filter(org=org, client_msg_id=client_msg_id).first()
        if existing is not None:
            return existing

    contact = None
    if conversation is not None and Conversation.contact.is_cached(conversation):
        contact = conversation.contact if conversation.contact.wxid == to_wxid else None
    if contact is None:
        contact = Contact.objects.filter(org=org, account=account, wxid=to_wxid).first()
    if contact is None:
        contact = contact_upsert(org=org, account=account, wxid=to_wxid, source="outbound")
    if conversation is None:
        conversation = conversation_for(org=org, account=account, contact=contact)
    elif conversation.org_id != org.pk:
        raise NotFoundError(_("Conversation not found."))

    payload: dict[str, Any] = {}
    if kind == Message.Kind.FILE:
        payload["file_name"] = file_name
    if kind == Message.Kind.LINK:
        payload.update(
            title=title or text, description=description or "", thumb_url=thumb_url or ""
        )
    if at_wxids:
        payload["at"] = list(at_wxids)
    payload.update(payload_video)
    now = timezone.now()
    message = Message(
        org=org,
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        sender_kind=sender_kind,
        sender_user=sender_user,
        kind=kind,
        text=text or "",
        status=Message.Status.QUEUED,
        account=account,
        to_wxid=to_wxid,
        media_url=url or "",
        media_file=media_file,
        payload=payload,
        is_urgent=urgent,
        not_before=not_before,
        client_msg_id=client_msg_id or "",
        **(message_fields or {}),
    )
    # Foreign keys given as loaded rows need no existence query each (the database's foreign
    # keys still check them on insert).
    loaded = [
        name
        for name, row in (
            ("org", org),
            ("conversation", conversation),
            ("account", account),
            ("sender_user", sender_user),
            ("media_file", media_file),
            ("ai_app", (message_fields or {}).get("ai_app")),
        )
        if getattr(row, "pk", None) is not None
    ]
    message.full_clean(exclude=loaded, validate_constraints=False)
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        existing = None
        if client_msg_id:  # sent before (a re-run), or a concurrent send with the same key won
            existing = Message.objects.filter(org=org, client_msg_id=client_msg_id).first()
        if existing is None:
            raise
        return existing
    if touch_conversation:
        Conversation.objects.filter(org_id=conversation.org_id, pk=conversation.pk).update(
            last_message_at=now, updated_at=now
        )
    else:
        conversation.last_message_at = now  # the caller saves it
    if push_queued:
        _push_status(message)
    countdown, human = human_delay(account), True
    if not_before and not_before > now:
        countdown, human = max(countdown, (not_before - now).total_seconds()), False
    message_id, org_id, inline = message.pk, org.pk, inline_requested()
    transaction.on_commit(
        lambda: dispatch(
            org_id=org_id, message_id=message_id, countdown=countdown, human=human, inline=inline
        )
    )
    return message
