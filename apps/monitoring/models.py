"""Models of the monitoring app.

Notifications live here (not in ``accounts``) because DESIGN puts "alerts, notifications,
monitor consumer" in monitoring: alerts are the main producer of urgent notifications and the
delivery channels (e-mail, org webhook robots, SMS) are operational plumbing, while ``accounts``
stays about identity. The health checks, metrics and alert models of the monitoring work go
below the notification models.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.fields import EncryptedTextField
from apps.core.models import OrgScopedModel


class Notification(OrgScopedModel):
    """An in-app notification of one user in one organisation (shown in the SPA and pushed as
    the ``notification`` WebSocket event)."""

    class Type(models.TextChoices):
        INFO = "info", _("Info")
        SUCCESS = "success", _("Success")
        WARNING = "warning", _("Warning")
        ERROR = "error", _("Error")
        URGENT = "urgent", _("Urgent")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    type = models.CharField(_("type"), max_length=16, choices=Type.choices, default=Type.INFO)
    # What produced it: account_status, handoff, budget, alert, manual ... (free text, filterable).
    category = models.CharField(_("category"), max_length=40, blank=True, default="")
    title = models.CharField(_("title"), max_length=200)
    message = models.TextField(_("message"), blank=True, default="")
    action_url = models.CharField(_("action URL"), max_length=500, blank=True, default="")
    data = models.JSONField(_("data"), default=dict, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["org", "user", "-created_at"]),
            models.Index(fields=["org", "user", "read_at"]),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        # Rendered as a link in the SPA, e-mails and robots: never a javascript: URL.
        url = self.action_url or ""
        if url and not (url.startswith("/") or url.startswith(("https://", "http://"))):
            raise ValidationError(
                {"action_url": _("Use a path starting with / or an http(s) URL.")}
            )


class NotificationWebhook(OrgScopedModel):
    """An organisation's outgoing notification channel: a WeCom or DingTalk group robot, or any
    URL that accepts a signed JSON body. The URL (robot key) and secret are encrypted at rest."""

    class Kind(models.TextChoices):
        WECOM = "wecom", _("WeCom group robot")
        DINGTALK = "dingtalk", _("DingTalk group robot")
        GENERIC = "generic", _("Generic JSON webhook")

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.GENERIC)
    url = EncryptedTextField(_("URL"))
    secret = EncryptedTextField(_("signing secret"), blank=True, default="")
    # Only notifications at least this severe are forwarded.
    min_type = models.CharField(
        _("minimum type"),
        max_length=16,
        choices=Notification.Type.choices,
        default=Notification.Type.WARNING,
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("notification webhook")
        verbose_name_plural = _("notification webhooks")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="notification_webhook_org_name"),
        ]

    def __str__(self) -> str:
        return self.name


class NotificationDelivery(OrgScopedModel):
    """One outbound delivery (e-mail, webhook call or SMS) of a notification, sent by a Celery
    task. The row is the idempotency key: a task claims it with a conditional update."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        WEBHOOK = "webhook", _("Webhook")
        SMS = "sms", _("SMS")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    notification = models.ForeignKey(
        Notification,
        verbose_name=_("notification"),
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    webhook = models.ForeignKey(
        NotificationWebhook,
        verbose_name=_("webhook"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    # The e-mail address, phone number, or the webhook's name.
    target = models.CharField(_("target"), max_length=200)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True, default="")
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification delivery")
        verbose_name_plural = _("notification deliveries")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel", "target"],
                name="notification_delivery_unique_target",
            ),
        ]
        indexes = [models.Index(fields=["org", "status"])]

    def __str__(self) -> str:
        return f"{self.channel} -> {self.target} ({self.status})"
