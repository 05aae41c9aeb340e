"""Writes of the monitoring app: notifications and their delivery channels.

``notify()`` is the one entry point other apps call (directly, or through the domain signals in
``apps.core.events`` that ``apps.monitoring.receivers`` turns into notifications). It stores one
``Notification`` per recipient, pushes the ``notification`` event to each recipient's user group
after commit, and queues the outbound deliveries (e-mail and SMS for urgent ones, the
organisation's webhook robots for anything at least as severe as each robot's ``min_type``);
Celery sends those with retries, so the caller never waits for a mail server or a robot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import realtime
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.core.secrets import redact, url_secrets
from apps.monitoring.models import Notification, NotificationDelivery, NotificationWebhook
from apps.monitoring.sms import SMSTransientError, get_sms_backend
from apps.orgs.models import Membership, Organization

logger = logging.getLogger(__name__)

TYPE_RANK = {
    Notification.Type.INFO: 1,
    Notification.Type.SUCCESS: 1,
    Notification.Type.WARNING: 2,
    Notification.Type.ERROR: 3,
    Notification.Type.URGENT: 4,
}
# Robot error codes that mean "too fast, try later" (WeCom 45009, DingTalk 130101).
_ROBOT_RATE_LIMIT_CODES = {45009, 130101}


class DeliveryTransientError(Exception):
    """A delivery failed in a way worth retrying."""


def notification_payload(notification: Notification) -> dict[str, Any]:
    """The ``data`` of the ``notification`` WebSocket event (and of the API's list items)."""
    return {
        "id": notification.id,
        "type": notification.type,
        "category": notification.category,
        "title": notification.title,
        "message": notification.message,
        "action_url": notification.action_url,
        "data": notification.data,
        "auto_close": notification.type in (Notification.Type.INFO, Notification.Type.SUCCESS),
        "read_at": notification.read_at,
        "created_at": notification.created_at,
    }


def _recipients(
    *, org: Organization, users: Iterable[Any] | None, roles: Iterable[str] | None
) -> list:
    """Members of ``org`` among ``users`` (objects or ids) plus members with one of ``roles``.
    Non-members are dropped: a notification never reaches another organisation's user."""
    memberships = Membership.objects.filter(org=org).select_related("user")
    user_ids = {getattr(u, "pk", u) for u in (users or [])}
    role_set = set(roles or [])
    chosen = {}
    for membership in memberships:
        if membership.user_id in user_ids or membership.role in role_set:
            if membership.user.is_active:
                chosen[membership.user_id] = membership.user
    dropped = user_ids - set(chosen)
    if dropped:
        logger.info("notify(): %s are not active members of org %s", sorted(dropped), org.id)
    return [chosen[k] for k in sorted(chosen)]


def _sms_numbers(org: Organization) -> list[str]:
    numbers = (org.settings or {}).get("notifications", {}).get("sms_numbers", [])
    return [str(n) for n in numbers if str(n).strip()] if isinstance(numbers, list) else []


@transaction.atomic
def notify(
    *,
    org: Organization,
    title: str,
    message: str = "",
    type: str = Notification.Type.INFO,  # noqa: A002 - the seed's field name
    users: Iterable[Any] | None = None,
    roles: Iterable[str] | None = None,
    action_url: str = "",
    category: str = "",
    data: dict[str, Any] | None = None,
) -> list[Notification]:
    """Notify members of ``org`` (given ``users`` and/or everyone with one of ``roles``).

    Returns the stored notifications (one per recipient; none when nobody qualifies).
    """
    recipients = _recipients(org=org, users=users, roles=roles)
    notifications = []
    for user in recipients:
        notification = Notification(
            org=org,
            user=user,
            type=type,
            category=category,
            title=title,
            message=message,
            action_url=action_url,
            data=data or {},
        )
        notification.full_clean()
        notifications.append(notification)
    if not notifications:
        return []
    Notification.objects.bulk_create(notifications)

    deliveries = []
    lead = notifications[0]  # the org-wide channels are delivered once per notify() call
    if type == Notification.Type.URGENT:
        for notification in notifications:
            if notification.user.email:
                deliveries.append(
                    NotificationDelivery(
                        org=org,
                        notification=notification,
                        channel=NotificationDelivery.Channel.EMAIL,
                        target=notification.user.email,
                    )
                )
        for number in _sms_numbers(org):
            deliveries.append(
                NotificationDelivery(
                    org=org,
                    notification=lead,
                    channel=NotificationDelivery.Channel.SMS,
                    target=number[:200],
                )
            )
    for webhook in NotificationWebhook.objects.filter(org=org, is_active=True):
        if TYPE_RANK[type] >= TYPE_RANK[webhook.min_type]:
            deliveries.append(
                NotificationDelivery(
                    org=org,
                    notification=lead,
                    channel=NotificationDelivery.Channel.WEBHOOK,
                    webhook=webhook,
                    target=f"webhook:{webhook.id}",
                )
            )
    NotificationDelivery.objects.bulk_create(deliveries)

    events = [
        (realtime.group_for_user(org.id, n.user_id), notification_payload(n)) for n in notifications
    ]
    delivery_ids = [d.id for d in deliveries]

    def after_commit() -> None:
        from apps.monitoring.tasks import notification_delivery_send as send_task

        for group, payload in events:
            realtime.push("notification", payload, groups=[group])
        for delivery_id in delivery_ids:
            try:
                send_task.delay(org_id=org.id, delivery_id=delivery_id)
            except Exception:  # noqa: BLE001 - the broker being down must not fail the caller.
                logger.warning(
                    "Could not enqueue notification delivery %s", delivery_id, exc_info=True
                )

    transaction.on_commit(after_commit)
    return notifications


@transaction.atomic
def notification_mark_read(*, org: Organization, user, notification_id: int) -> Notification:
    notification = (
        Notification.objects.select_for_update()
        .filter(org=org, user=user, id=notification_id)
        .first()
    )
    if notification is None:
        raise NotFoundError(_("Notification not found."))
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at", "updated_at"])
        realtime.push_on_commit(
            "notification_read",
            {"ids": [notification.id], "all": False},
            groups=[realtime.group_for_user(org.id, user.id)],
        )
    return notification


@transaction.atomic
def notification_mark_all_read(*, org: Organization, user) -> int:
    count = Notification.objects.filter(org=org, user=user, read_at__isnull=True).update(
        read_at=timezone.now(), updated_at=timezone.now()
    )
    if count:
        realtime.push_on_commit(
            "notification_read",
            {"ids": [], "all": True},
            groups=[realtime.group_for_user(org.id, user.id)],
        )
    return count


# --- deliveries (called by the Celery task) ------------------------------------------------------


def _absolute(url: str) -> str:
    if url.startswith("/"):
        return settings.PUBLIC_BASE_URL + url
    return url


def webhook_body(webhook: NotificationWebhook, notification: Notification) -> dict[str, Any]:
    """The JSON body for the robot kind (WeCom and DingTalk speak markdown messages)."""
    link = _absolute(notification.action_url) if notification.action_url else ""
    label = str(Notification.Type(notification.type).label)
    text = f"**[{label}] {notification.title}**\n\n{notification.message}".strip()
    if link:
        text += f"\n\n[{_('Open')}]({link})"
    if webhook.kind == NotificationWebhook.Kind.WECOM:
        return {"msgtype": "markdown", "markdown": {"content": text}}
    if webhook.kind == NotificationWebhook.Kind.DINGTALK:
        return {"msgtype": "markdown", "markdown": {"title": notification.title, "text": text}}
    return {
        "event": "notification",
        "org_id": notification.org_id,
        "notification": {
            "id": notification.id,
            "type": notification.type,
            "category": notification.category,
            "title": notification.title,
            "message": notification.message,
            "action_url": link,
            "created_at": notification.created_at.isoformat(),
        },
    }


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Signature``: hex HMAC-SHA256 of ``<timestamp>.<body>`` with the webhook's secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _dingtalk_signed_url(url: str, secret: str, timestamp_ms: str) -> str:
    """DingTalk robots with "加签" verify ``timestamp`` and ``sign`` query parameters."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    sign = base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()
    separator = "&" if "?" in url else "?"
    query = urllib.parse.urlencode({"timestamp": timestamp_ms, "sign": sign})
    return f"{url}{separator}{query}"


def _send_webhook(delivery: NotificationDelivery) -> None:
    webhook = delivery.webhook
    body = json.dumps(
        webhook_body(webhook, delivery.notification), ensure_ascii=False, separators=(",", ":")
    ).encode()
    now = time.time()
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Signature-Timestamp": timestamp,
    }
    url = webhook.url
    if webhook.secret:
        headers["X-Signature"] = sign_webhook(webhook.secret, timestamp, body)
        if webhook.kind == NotificationWebhook.Kind.DINGTALK:
            url = _dingtalk_signed_url(url, webhook.secret, str(int(now * 1000)))
    try:
        response = requests.post(
            url,
            data=body,
            headers=headers,
            timeout=settings.NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        # requests puts the URL (with its access_token) in the message: mask it before the
        # text reaches the delivery row or the retry log line.
        message = redact(f"{exc.__class__.__name__}: {exc}", url_secrets(url), known=False)
        raise DeliveryTransientError(message) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise DeliveryTransientError(f"HTTP {response.status_code}")
    if response.status_code >= 300:
        raise ApplicationError(f"HTTP {response.status_code}: {response.text[:200]}")
    if webhook.kind != NotificationWebhook.Kind.GENERIC:
        try:
            errcode = int(response.json().get("errcode", 0))
        except (ValueError, AttributeError, TypeError):
            errcode = 0
        if errcode in _ROBOT_RATE_LIMIT_CODES:
            raise DeliveryTransientError(f"robot errcode {errcode}")
        if errcode:
            raise ApplicationError(f"robot errcode {errcode}: {response.text[:200]}")


def _send_email(delivery: NotificationDelivery) -> None:
    notification = delivery.notification
    org = Organization.objects.get(id=delivery.org_id)
    body = notification.message
    if notification.action_url:
        body += "\n\n" + _absolute(notification.action_url)
    try:
        send_mail(
            subject=f"[{org.name}] {notification.title}",
            message=body,
            from_email=None,
            recipient_list=[delivery.target],
        )
    except OSError as exc:  # smtplib errors are OSErrors
        raise DeliveryTransientError(str(exc)) from exc


def _send_sms(delivery: NotificationDelivery) -> None:
    notification = delivery.notification
    text = f"{notification.title}: {notification.message}".strip(": ")[:300]
    try:
        get_sms_backend().send(to=delivery.target, text=text)
    except SMSTransientError as exc:
        raise DeliveryTransientError(str(exc)) from exc


_SENDERS = {
    NotificationDelivery.Channel.WEBHOOK: _send_webhook,
    NotificationDelivery.Channel.EMAIL: _send_email,
    NotificationDelivery.Channel.SMS: _send_sms,
}


def notification_delivery_send(*, org_id: int, delivery_id: int, final_attempt: bool) -> str:
    """Send one claimed delivery. Returns the resulting status; raises
    ``DeliveryTransientError`` (after releasing the claim) when a retry should follow."""
    rows = NotificationDelivery.objects.filter(org_id=org_id, id=delivery_id)
    if not rows.filter(status=NotificationDelivery.Status.PENDING).update(
        status=NotificationDelivery.Status.SENDING, updated_at=timezone.now()
    ):
        return "skipped"  # already sent or failed, or another worker holds it
    delivery = (
        NotificationDelivery.objects.select_related("notification", "webhook")
        .filter(org_id=org_id, id=delivery_id)
        .first()
    )
    attempts = delivery.attempts + 1
    url_parts = url_secrets(delivery.webhook.url) if delivery.webhook_id else []
    try:
        _SENDERS[delivery.channel](delivery)
    except DeliveryTransientError as exc:
        exc.args = (redact(str(exc), url_parts),)
        status = (
            NotificationDelivery.Status.FAILED
            if final_attempt
            else NotificationDelivery.Status.PENDING
        )
        rows.update(status=status, attempts=attempts, last_error=str(exc)[:1000])
        if final_attempt:
            return status
        raise
    except Exception as exc:  # noqa: BLE001 - permanent: record it, never retry.
        error = redact(f"{exc.__class__.__name__}: {exc}", url_parts)
        logger.warning("Notification delivery %s failed: %s", delivery_id, error)
        rows.update(
            status=NotificationDelivery.Status.FAILED,
            attempts=attempts,
            last_error=error[:1000],
        )
        return NotificationDelivery.Status.FAILED
    rows.update(
        status=NotificationDelivery.Status.SENT,
        attempts=attempts,
        last_error="",
        sent_at=timezone.now(),
    )
    return NotificationDelivery.Status.SENT


# --- the WebSocket management API ----------------------------------------------------------------


def ws_broadcast(*, org: Organization, title: str, message: str, type: str) -> bool:  # noqa: A002
    """A transient ``notification`` to every socket of the organisation (not stored)."""
    return realtime.push(
        "notification",
        {
            "id": None,
            "type": type,
            "category": "broadcast",
            "title": title,
            "message": message,
            "action_url": "",
            "data": {},
            "auto_close": type in (Notification.Type.INFO, Notification.Type.SUCCESS),
            "read_at": None,
            "created_at": timezone.now(),
        },
        groups=[realtime.group_for_org(org.id)],
    )


def ws_disconnect_user(*, org: Organization, user_id: int, connection_id: str = "") -> bool:
    """Ask the user's sockets in this organisation (or one of them) to close with 4000."""
    extra = {"connection_id": connection_id} if connection_id else {}
    return realtime.send_control(
        "disconnect", groups=[realtime.group_for_user(org.id, user_id)], **extra
    )


def ws_ping_user(*, org: Organization, user_id: int) -> bool:
    return realtime.push(
        "ping", {"from": "admin"}, groups=[realtime.group_for_user(org.id, user_id)]
    )
