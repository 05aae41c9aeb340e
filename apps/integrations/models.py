"""Platform connections (GeWe / E云管家), AI apps (OpenAI-compatible / FastGPT / Dify) and the
integration call log that monitoring aggregates."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.fields import EncryptedTextField
from apps.core.models import OrgScopedModel, OrgScopedQuerySet


def validate_http_url(value: str) -> None:
    """An http(s) URL with a host. Looser than URLValidator on purpose: self-hosted platforms
    often live at internal names such as ``http://gewechat:2531/v2/api`` (no TLD)."""
    parts = urlsplit(value or "")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValidationError(_("Enter an http(s) URL with a host name."), code="invalid")


def new_webhook_secret() -> str:
    """An unguessable URL token (43 url-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


class PlatformConnection(OrgScopedModel):
    """One account at a WeChat automation platform (a GeWe token or an E云管家 Authorization).

    WeChat accounts (devices) hang off a connection. ``base_url`` includes GeWe's path prefix
    (``http://host:2531/v2/api`` self-hosted, ``https://host/gewe/v2/api`` hosted), so one client
    works for both. Paid-only features (moments) are gated by ``capabilities``. The platform posts
    events to ``webhook_url``, whose secret part can be rotated.
    """

    class Provider(models.TextChoices):
        GEWE = "gewe", _("GeWe")
        ECLOUD = "ecloud", _("E云管家")

    class Status(models.TextChoices):
        UNKNOWN = "unknown", _("Not checked yet")
        OK = "ok", _("Reachable")
        ERROR = "error", _("Failing")
        DISABLED = "disabled", _("Disabled")

    class Capability(models.TextChoices):
        MOMENTS = "moments", _("Moments")

    WEBHOOK_PATHS = {
        Provider.GEWE: "/api/v1/integrations/gewe/webhook/{secret}/",
        Provider.ECLOUD: "/api/v1/integrations/ecloud/callback/{secret}/",
    }

    provider = models.CharField(_("provider"), max_length=16, choices=Provider.choices)
    name = models.CharField(_("name"), max_length=120)
    base_url = models.CharField(
        _("base URL"),
        max_length=300,
        validators=[validate_http_url],
        help_text=_("GeWe: include the API prefix, e.g. http://host:2531/v2/api."),
    )
    token = EncryptedTextField(
        _("token"),
        blank=True,
        help_text=_("GeWe X-GEWE-TOKEN or E云管家 Authorization value (stored encrypted)."),
    )
    account = models.CharField(
        _("developer account"),
        max_length=120,
        blank=True,
        help_text=_("E云管家 developer account, used to obtain the Authorization value."),
    )
    password = EncryptedTextField(
        _("developer password"),
        blank=True,
        help_text=_("E云管家 developer password (stored encrypted); optional."),
    )
    capabilities = models.JSONField(_("capabilities"), default=list, blank=True)
    extra = models.JSONField(_("extra settings"), default=dict, blank=True)
    webhook_secret = models.CharField(
        _("webhook secret"), max_length=64, unique=True, default=new_webhook_secret, editable=False
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.UNKNOWN
    )
    status_detail = models.CharField(_("status detail"), max_length=300, blank=True)
    last_checked_at = models.DateTimeField(_("last checked at"), null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(_("last latency (ms)"), null=True, blank=True)

    class Meta:
        verbose_name = _("platform connection")
        verbose_name_plural = _("platform connections")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "name"], name="integrations_connection_org_name"
            ),
        ]
        indexes = [models.Index(fields=["org", "provider"], name="integ_conn_org_provider")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()})"

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.capabilities, list) or not all(
            isinstance(item, str) for item in self.capabilities
        ):
            raise ValidationError({"capabilities": _("Capabilities must be a list of names.")})
        unknown = set(self.capabilities) - set(self.Capability.values)
        if unknown:
            raise ValidationError(
                {
                    "capabilities": _("Unknown capabilities: %(names)s")
                    % {"names": ", ".join(sorted(unknown))}
                }
            )

    @property
    def webhook_path(self) -> str:
        return self.WEBHOOK_PATHS[self.provider].format(secret=self.webhook_secret)

    @property
    def webhook_url(self) -> str:
        """The absolute URL the platform must post events to (built from PUBLIC_BASE_URL)."""
        return f"{settings.PUBLIC_BASE_URL}{self.webhook_path}"

    def has_capability(self, capability: str) -> bool:
        return capability in (self.capabilities or [])


class AIApp(OrgScopedModel):
    """A configured AI service: OpenAI-compatible chat (also DashScope, Doubao...), a FastGPT app
    or a Dify app, used for replies or for intent / sentiment analysis.

    At most one enabled-or-not default per organisation and purpose. Read through the cached
    selectors ``ai_app_get`` / ``ai_app_default`` (5 minutes, invalidated on save and delete).
    """

    class Provider(models.TextChoices):
        OPENAI = "openai", _("OpenAI-compatible")
        FASTGPT = "fastgpt", _("FastGPT")
        DIFY = "dify", _("Dify")

    class Purpose(models.TextChoices):
        REPLY = "reply", _("Reply")
        INTENT = "intent", _("Intent analysis")
        SENTIMENT = "sentiment", _("Sentiment analysis")

    provider = models.CharField(_("provider"), max_length=16, choices=Provider.choices)
    name = models.CharField(_("name"), max_length=120)
    base_url = models.CharField(
        _("base URL"),
        max_length=300,
        validators=[validate_http_url],
        help_text=_("e.g. https://api.openai.com/v1, https://host/api (FastGPT), https://host/v1"),
    )
    api_key = EncryptedTextField(_("API key"), blank=True)
    model = models.CharField(
        _("model"), max_length=120, blank=True, help_text=_("Required for OpenAI-compatible.")
    )
    app_id = models.CharField(
        _("app / workflow id"),
        max_length=120,
        blank=True,
        help_text=_("FastGPT app or workflow id, Dify app id; informational for routing."),
    )
    streaming = models.BooleanField(_("streaming"), default=False)
    temperature = models.DecimalField(
        _("temperature"),
        max_digits=3,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(2)],
    )
    max_tokens = models.PositiveIntegerField(
        _("max tokens"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    system_prompt = models.TextField(_("system prompt"), blank=True)
    purpose = models.CharField(
        _("purpose"), max_length=16, choices=Purpose.choices, default=Purpose.REPLY
    )
    is_default = models.BooleanField(_("default for its purpose"), default=False)
    # The organisation's failover list of reply apps (accounts without their own list use it):
    # the default app first, then these by ascending position. Empty: not in the list.
    failover_position = models.PositiveSmallIntegerField(
        _("failover position"),
        null=True,
        blank=True,
        help_text=_(
            "Reply apps with a position form the organisation's failover list (after the "
            "default app), tried in ascending order when an app fails."
        ),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    extra = models.JSONField(_("extra settings"), default=dict, blank=True)
    last_checked_at = models.DateTimeField(_("last checked at"), null=True, blank=True)
    last_check_ok = models.BooleanField(_("last check ok"), null=True, blank=True)
    last_check_detail = models.CharField(_("last check detail"), max_length=300, blank=True)
    last_latency_ms = models.PositiveIntegerField(_("last latency (ms)"), null=True, blank=True)

    class Meta:
        verbose_name = _("AI app")
        verbose_name_plural = _("AI apps")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="integrations_aiapp_org_name"),
            models.UniqueConstraint(
                fields=["org", "purpose"],
                condition=Q(is_default=True),
                name="integrations_aiapp_one_default_per_purpose",
            ),
        ]
        indexes = [models.Index(fields=["org", "provider"], name="integ_aiapp_org_provider")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()})"

    def clean(self) -> None:
        super().clean()
        if self.provider == self.Provider.OPENAI and not self.model:
            raise ValidationError({"model": _("An OpenAI-compatible app needs a model name.")})


class IntegrationCall(models.Model):
    """One attempt of one provider call (the call log monitoring aggregates).

    Holds no secrets and no message bodies. ``wechat_account_id`` is a plain integer because the
    WeChat accounts app owns that table; it is not enforced by a foreign key.
    """

    class Service(models.TextChoices):
        GEWE = "gewe", _("GeWe")
        ECLOUD = "ecloud", _("E云管家")
        OPENAI = "openai", _("OpenAI-compatible")
        DASHSCOPE = "dashscope", _("DashScope (OpenAI-compatible)")
        FASTGPT = "fastgpt", _("FastGPT")
        DIFY = "dify", _("Dify")

    # The call-log services of each AIApp provider (DashScope logs as its own service).
    AI_SERVICES = {
        "openai": ("openai", "dashscope"),
        "fastgpt": ("fastgpt",),
        "dify": ("dify",),
    }

    org = models.ForeignKey(
        "orgs.Organization",
        verbose_name=_("organization"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    service = models.CharField(_("service"), max_length=16, choices=Service.choices)
    operation = models.CharField(_("operation"), max_length=64)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    ok = models.BooleanField(_("ok"))
    error_class = models.CharField(_("error class"), max_length=64, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"))
    request_id = models.CharField(_("request id"), max_length=128, blank=True)
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=1)
    connection = models.ForeignKey(
        PlatformConnection,
        verbose_name=_("connection"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
    )
    ai_app = models.ForeignKey(
        AIApp,
        verbose_name=_("AI app"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
    )
    wechat_account_id = models.BigIntegerField(_("WeChat account id"), null=True, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now)

    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        verbose_name = _("integration call")
        verbose_name_plural = _("integration calls")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["org", "service", "at"], name="integ_call_org_service_at"),
            models.Index(fields=["org", "ok", "at"], name="integ_call_org_ok_at"),
            models.Index(fields=["org", "at"], name="integ_call_org_at"),
            models.Index(fields=["service", "at"], name="integ_call_service_at"),
            models.Index(fields=["connection", "at"], name="integ_call_conn_at"),
            models.Index(fields=["ai_app", "at"], name="integ_call_aiapp_at"),
        ]

    def __str__(self) -> str:
        return f"{self.service}.{self.operation} #{self.attempt} {'ok' if self.ok else 'failed'}"


# -- webhook inbox (the core loop; see apps/integrations/webhooks.py) --------------------------


class WebhookEvent(OrgScopedModel):
    """One callback a platform posted to a connection's webhook URL, stored before we answer.

    ``dedupe_key`` is unique per connection (the database is the guard): the platform's message
    id (GeWe ``Appid:NewMsgId``, E云管家 ``wcId:newMsgId``, as strings) or, for events without
    one, a hash of the body. A redelivery, concurrent or a day later, is a no-op. A Celery task
    turns a ``received`` event into contacts, conversations and messages; a periodic task
    re-enqueues events left ``received`` (broker lost the task, worker killed).

    ``claimed_until`` is the processing claim's lease: set when a worker starts on the event,
    cleared when it ends. Only an event whose claim expired (its worker died) or whose enqueue
    failed is stuck; one merely waiting on the queue is never re-enqueued. ``order_key`` is
    the chat the event belongs to (account + chat wxid): events of one chat are applied in
    arrival order, events of different chats independently (``webhooks/process.py``).
    """

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Ignored")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    connection = models.ForeignKey(
        PlatformConnection,
        verbose_name=_("connection"),
        on_delete=models.CASCADE,
        related_name="webhook_events",
    )
    provider = models.CharField(
        _("provider"), max_length=16, choices=PlatformConnection.Provider.choices
    )
    event_type = models.CharField(_("event type"), max_length=64, blank=True)
    dedupe_key = models.CharField(_("dedupe key"), max_length=200)
    payload = models.JSONField(_("payload"), null=True, blank=True)
    raw_body = models.TextField(_("raw body (rejected events, truncated)"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    order_key = models.CharField(_("order key"), max_length=200, blank=True, default="")
    # When the worker started on it (bench/e2e and the stage histograms: queue wait vs work).
    processing_started_at = models.DateTimeField(_("processing started at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "dedupe_key"], name="webhook_event_connection_dedupe"
            )
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="webhook_event_status_created"),
            models.Index(fields=["org", "created_at"], name="webhook_event_org_created"),
            # The older waiting events of one chat (per-chat order).
            models.Index(
                fields=["connection", "order_key", "id"],
                condition=models.Q(status="received"),
                name="webhook_event_chat_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type or '?'} ({self.status})"
