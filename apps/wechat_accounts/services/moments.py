"""Moments: create, cancel, post and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.integrations.clients import errors as client_errors
from apps.media.services import media_kind_check
from apps.orgs.models import Organization
from apps.wechat_accounts.models import (
    MomentPost,
    MomentTimelineItem,
    Tag,
    WeChatAccount,
)
from apps.wechat_accounts.platform import client_for_account
from apps.wechat_accounts.send_policy import send_limits
from apps.wechat_accounts.services._common import Status, _account_get, _platform_error, _save
from apps.wechat_accounts.services.accounts import account_mark_offline_from_send

# -- moments -------------------------------------------------------------------------------


@transaction.atomic
def moment_create(
    *,
    org: Organization,
    account: WeChatAccount,
    text: str = "",
    images: list[str] | None = None,
    link: dict | None = None,
    visibility: str = MomentPost.Visibility.PUBLIC,
    visible_tags: list[Tag] | None = None,
    scheduled_at: datetime | None = None,
    user=None,
    image_media: list | None = None,
) -> MomentPost:
    """A Moments post, now (``scheduled_at`` empty or past) or at ``scheduled_at`` (the
    periodic ``moments_post_due`` task picks it up).

    ``images`` are public URLs, ``image_media`` stored images (``apps.media``; kept as
    ``"media:<id>"`` and sent to the platform as signed URLs), together at most nine. A kind of
    post the account's platform cannot make (image or link on E云/GeWe where unsupported, any
    Moment on open-source GeWe) is refused here, up front (400 ``not_supported``)."""
    if account.org_id != org.pk:
        raise ApplicationError(_("Invalid data."), fields={"account": [_("Unknown account.")]})
    images = list(images or [])
    for media in image_media or []:
        if media.org_id != org.pk:
            raise ApplicationError(_("Invalid data."), fields={"image_media": [_("Unknown file.")]})
        media_kind_check(media=media, kind="image")
        images.append(f"{MEDIA_PREFIX}{media.pk}")
    moment_supported_check(account, images=images, link=link or {})
    post = MomentPost(
        org=org,
        account=account,
        text=text,
        images=images,
        link=link or {},
        visibility=visibility,
        scheduled_at=scheduled_at,
        created_by=user,
    )
    _save(post)
    if visible_tags:
        if any(t.org_id != org.pk for t in visible_tags):
            raise ApplicationError(_("Invalid data."), fields={"visible_tags": [_("Unknown tag.")]})
        post.visible_tags.set(visible_tags)
    if scheduled_at is None or scheduled_at <= timezone.now():
        from apps.wechat_accounts.tasks import moment_post as post_task

        post_id, org_id = post.pk, org.pk
        transaction.on_commit(lambda: post_task.delay(org_id=org_id, moment_id=post_id))
    return post


MEDIA_PREFIX = "media:"


def _moment_kind(*, images: list, link: dict) -> str:
    return "image" if images else "link" if link else "text"


def moment_supported_check(account: WeChatAccount, *, images: list, link: dict) -> None:
    kind = _moment_kind(images=images, link=link)
    client = client_for_account(account)
    if kind not in client.moment_kinds:
        raise ApplicationError(
            _("This account's platform cannot post %(kind)s Moments.") % {"kind": kind},
            code="not_supported",
        )
    if len(images) > client.moment_max_images:
        message = _("At most %(count)d images per Moment.") % {"count": client.moment_max_images}
        raise ApplicationError(message, fields={"images": [message]})
    if link and not (link.get("url") and link.get("title")):
        raise ApplicationError(
            _("Invalid data."), fields={"link": [_("A link needs a url and a title.")]}
        )


def _image_urls(post: MomentPost) -> list[str]:
    """Public URLs as given; stored images as signed, expiring URLs made now."""
    from apps.media.models import MediaFile
    from apps.media.signing import platform_url

    ids = [int(x[len(MEDIA_PREFIX) :]) for x in post.images if str(x).startswith(MEDIA_PREFIX)]
    files = {m.pk: m for m in MediaFile.objects.filter(org_id=post.org_id, pk__in=ids)}
    urls = []
    for item in post.images:
        if str(item).startswith(MEDIA_PREFIX):
            media = files.get(int(item[len(MEDIA_PREFIX) :]))
            if media is None:
                raise client_errors.InvalidRequest("an image of this Moment was deleted")
            urls.append(platform_url(media))
        else:
            urls.append(item)
    return urls


@transaction.atomic
def moment_cancel(*, org: Organization, moment_id: int) -> MomentPost:
    post = MomentPost.objects.select_for_update().filter(org=org, pk=moment_id).first()
    if post is None:
        raise NotFoundError(_("Moment not found."))
    if post.status != MomentPost.Status.SCHEDULED:
        raise ConflictError(_("Only a scheduled post can be cancelled."))
    post.status = MomentPost.Status.CANCELLED
    _save(post, ["status"])
    return post


def moment_post(*, org_id: int, moment_id: int) -> str:
    """Post one Moment through the account's send limits (claim, limiter, platform call)."""
    from apps.core import ratelimit

    post = (
        MomentPost.objects.select_related("account", "account__org", "account__connection")
        .filter(org_id=org_id, pk=moment_id)
        .first()
    )
    if post is None or post.status != MomentPost.Status.SCHEDULED:
        return "skipped"
    account = post.account
    if account.status != Status.ONLINE:
        return "not_online"
    limits = send_limits(account)
    decision = ratelimit.acquire(limits)
    if not decision.allowed:
        return "rate_limited"  # stays scheduled; the due task tries again next minute
    if not MomentPost.objects.filter(pk=post.pk, status=MomentPost.Status.SCHEDULED).update(
        status=MomentPost.Status.POSTING, attempts=post.attempts + 1, updated_at=timezone.now()
    ):
        ratelimit.release(limits, decision.token)
        return "skipped"
    client = client_for_account(account)
    try:
        if post.images:
            moment = client.post_moment_images(account.device_id, post.text, _image_urls(post))
        elif post.link:
            moment = client.post_moment_link(
                account.device_id,
                post.text,
                title=post.link.get("title", ""),
                description=post.link.get("description", ""),
                url=post.link.get("url", ""),
                thumb_url=post.link.get("thumb_url", ""),
            )
        else:
            moment = client.post_moment_text(account.device_id, post.text)
    except client_errors.IntegrationError as exc:
        retry = (
            isinstance(exc, client_errors.RateLimited)
            or (isinstance(exc, client_errors.Unavailable) and exc.before_send)
        ) and post.attempts + 1 < settings.WECHAT_SEND_MAX_ATTEMPTS
        MomentPost.objects.filter(pk=post.pk).update(
            status=MomentPost.Status.SCHEDULED if retry else MomentPost.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:500],
            updated_at=timezone.now(),
        )
        if isinstance(exc, client_errors.AccountOffline):
            account_mark_offline_from_send(org_id=org_id, account_id=account.pk, reason=str(exc))
        return "failed"
    MomentPost.objects.filter(pk=post.pk).update(
        status=MomentPost.Status.POSTED,
        platform_id=moment.moment_id,
        posted_at=timezone.now(),
        error="",
        updated_at=timezone.now(),
    )
    WeChatAccount.objects.filter(pk=account.pk).update(moments_fetched_at=None)
    return "posted"


def moments_post_due(*, org: Organization) -> int:
    from apps.wechat_accounts.tasks import moment_post as post_task

    ids = list(
        MomentPost.objects.filter(
            org=org, status=MomentPost.Status.SCHEDULED, account__status=Status.ONLINE
        )
        .filter(scheduled_at__lte=timezone.now())
        .values_list("id", flat=True)
    )
    ids += list(
        MomentPost.objects.filter(
            org=org,
            status=MomentPost.Status.SCHEDULED,
            scheduled_at__isnull=True,
            account__status=Status.ONLINE,
            updated_at__lt=timezone.now() - timedelta(minutes=1),
        ).values_list("id", flat=True)
    )
    for moment_id in ids:
        post_task.delay(org_id=org.pk, moment_id=moment_id)
    return len(ids)


def moments_timeline_refresh(*, org: Organization, account_id: int, force: bool = False) -> int:
    """Refresh the cached timeline when older than ``WECHAT_MOMENTS_TIMELINE_TTL_SECONDS``."""
    account = _account_get(org=org, account_id=account_id)
    ttl = timedelta(seconds=settings.WECHAT_MOMENTS_TIMELINE_TTL_SECONDS)
    if (
        not force
        and account.moments_fetched_at
        and timezone.now() - account.moments_fetched_at < ttl
    ):
        return 0
    try:
        page = client_for_account(account).list_moments(account.device_id)
    except client_errors.IntegrationError as exc:
        raise _platform_error(exc) from exc
    with transaction.atomic():
        for item in page.items:
            posted = datetime.fromtimestamp(item.create_time, tz=UTC) if item.create_time else None
            MomentTimelineItem.objects.update_or_create(
                account=account,
                moment_id=item.moment_id,
                defaults={
                    "org_id": org.pk,
                    "author_wxid": item.wxid[:128],
                    "author_nickname": (item.nickname or "")[:200],
                    "posted_at": posted,
                    "raw": item.raw,
                },
            )
        WeChatAccount.objects.filter(pk=account.pk).update(moments_fetched_at=timezone.now())
    return len(page.items)
