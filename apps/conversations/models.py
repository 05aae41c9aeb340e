"""Conversations and their messages.

This is the minimal first cut the realtime work needs (created by the realtime engineer so the
chat consumers have something real to look up). The WeChat-accounts / core-loop work extends
these models with account and contact foreign keys, external ids and the inbound/outbound
pipeline fields through new migrations.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.models import OrgScopedModel


class Conversation(OrgScopedModel):
    """A chat with one customer (or one group) on one WeChat account of an organisation."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending")
        CLOSED = "closed", _("Closed")

    class Mode(models.TextChoices):
        AI = "ai", _("AI")
        HUMAN = "human", _("Human")

    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.OPEN
    )
    mode = models.CharField(_("mode"), max_length=16, choices=Mode.choices, default=Mode.AI)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    unread_count = models.PositiveIntegerField(_("unread messages"), default=0)
    last_message_at = models.DateTimeField(_("last message at"), null=True, blank=True)
    # The WeChat account and the contact (friend or group) this chat is with. Nullable only for
    # rows created before the WeChat-accounts migration; services always set both.
    account = models.ForeignKey(
        "wechat_accounts.WeChatAccount",
        verbose_name=_("WeChat account"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="conversations",
    )
    contact = models.ForeignKey(
        "wechat_accounts.Contact",
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="conversations",
    )

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at", "-id"]
        indexes = [models.Index(fields=["org", "-last_message_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "account", "contact"], name="conversation_org_account_contact"
            )
        ]

    def __str__(self) -> str:
        return f"conversation {self.pk}"


class Message(OrgScopedModel):
    """One message of a conversation, inbound from the customer or outbound to them."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("Inbound")
        OUTBOUND = "outbound", _("Outbound")

    class SenderKind(models.TextChoices):
        CONTACT = "contact", _("Contact")
        AI = "ai", _("AI")
        AGENT = "agent", _("Agent")
        SYSTEM = "system", _("System")
        PHONE = "phone", _("Salesperson's phone")
        SOP = "sop", _("SOP campaign")

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")
        FILE = "file", _("File")
        LINK = "link", _("Link")
        VOICE = "voice", _("Voice")
        VIDEO = "video", _("Video")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    conversation = models.ForeignKey(
        Conversation,
        verbose_name=_("conversation"),
        on_delete=models.CASCADE,
        related_name="messages",
    )
    direction = models.CharField(_("direction"), max_length=16, choices=Direction.choices)
    sender_kind = models.CharField(_("sender"), max_length=16, choices=SenderKind.choices)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(_("text"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED
    )

    # -- the outbound pipeline (apps.wechat_accounts.services.send) ---------------------------
    account = models.ForeignKey(
        "wechat_accounts.WeChatAccount",
        verbose_name=_("WeChat account"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="messages",
    )
    to_wxid = models.CharField(_("to wxid"), max_length=128, blank=True)
    # Platform ids exceed 2^53: always strings. Unique per account when set (dedupe).
    platform_msg_id = models.CharField(_("platform message id"), max_length=64, blank=True)
    # Caller-chosen idempotency key: a second send() with the same key returns the first row.
    client_msg_id = models.CharField(_("idempotency key"), max_length=128, blank=True)
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("sent by user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    media_url = models.URLField(_("media URL"), max_length=1000, blank=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    is_urgent = models.BooleanField(
        _("urgent"), default=False, help_text=_("Urgent sends ignore the quiet hours.")
    )
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    # Set right before the platform call: a crash after it is the ambiguous case.
    call_started_at = models.DateTimeField(_("platform call started at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["org", "conversation", "created_at"]),
            # The reconnect catch-up reads "changed since" per organisation.
            models.Index(fields=["org", "updated_at"]),
            # Per-contact ordering: "is there an older unfinished message to this contact?"
            models.Index(fields=["account", "to_wxid", "status", "id"], name="msg_outbound_order"),
            # Recovery: expired leases and stale queued rows.
            models.Index(fields=["status", "lease_expires_at"], name="msg_outbound_lease"),
            models.Index(fields=["account", "sent_at"], name="msg_account_sent_at"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "platform_msg_id"],
                condition=~models.Q(platform_msg_id=""),
                name="message_account_platform_msg_id",
            ),
            models.UniqueConstraint(
                fields=["org", "client_msg_id"],
                condition=~models.Q(client_msg_id=""),
                name="message_org_client_msg_id",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} ({self.direction})"
