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

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at", "-id"]
        indexes = [models.Index(fields=["org", "-last_message_at"])]

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

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["org", "conversation", "created_at"]),
            # The reconnect catch-up reads "changed since" per organisation.
            models.Index(fields=["org", "updated_at"]),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} ({self.direction})"
