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
from django.utils import timezone
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


# ==================================================================================================
# Health checks, metrics and alerts (the monitoring work: checks.py, metrics.py, alerting.py).
# ==================================================================================================


class MonitoringConfig(OrgScopedModel):
    """An organisation's monitoring settings (one row per organisation, created on first use).

    ``enabled`` is what ``POST /monitoring/start`` and ``/stop`` switch: when off, the beat's
    fan-out skips the organisation (no checks, no rule evaluation).
    """

    enabled = models.BooleanField(_("checks enabled"), default=True)
    interval_seconds = models.PositiveIntegerField(_("check interval (s)"), default=30)
    # A live AI check is a minimal chat turn: it costs provider tokens (never billed to the
    # organisation's ledger), so it can be switched off; health then comes from the call log.
    ai_live_checks = models.BooleanField(_("live AI checks"), default=True)
    ai_check_interval_seconds = models.PositiveIntegerField(
        _("live AI check interval (s)"), default=300
    )
    sample_retention_days = models.PositiveIntegerField(_("sample retention (days)"), default=7)
    alert_retention_days = models.PositiveIntegerField(_("alert retention (days)"), default=30)
    dedupe_window_seconds = models.PositiveIntegerField(
        _("de-duplication window (s)"), default=3600
    )
    auto_resolve_seconds = models.PositiveIntegerField(
        _("auto-resolve after the condition clears for (s)"), default=120
    )
    evaluation_window_seconds = models.PositiveIntegerField(
        _("rule evaluation window (s)"), default=300
    )
    min_requests = models.PositiveIntegerField(
        _("minimum requests before rate rules apply"), default=5
    )
    anomaly_z_threshold = models.FloatField(_("anomaly z-score threshold"), default=3.0)
    anomaly_min_hours = models.PositiveIntegerField(
        _("anomaly: minimum baseline hours"), default=24
    )
    # High and critical alerts are sent as urgent notifications (e-mail, SMS numbers, every
    # active robot); switched off they go out as errors (in-app, WebSocket, robots whose
    # minimum type allows it).
    notify_email = models.BooleanField(_("e-mail for high and critical alerts"), default=True)
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)

    class Meta:
        verbose_name = _("monitoring configuration")
        verbose_name_plural = _("monitoring configurations")
        constraints = [models.UniqueConstraint(fields=["org"], name="monitoring_config_org")]

    def __str__(self) -> str:
        return f"monitoring config of org {self.org_id}"

    def clean(self) -> None:
        errors = {}
        if not 10 <= self.interval_seconds <= 3600:
            errors["interval_seconds"] = _("Use 10 to 3600 seconds.")
        if not 1 <= self.sample_retention_days <= 90:
            errors["sample_retention_days"] = _("Use 1 to 90 days.")
        if not 1 <= self.alert_retention_days <= 365:
            errors["alert_retention_days"] = _("Use 1 to 365 days.")
        if not 60 <= self.evaluation_window_seconds <= 86400:
            errors["evaluation_window_seconds"] = _("Use 60 to 86400 seconds.")
        if self.anomaly_z_threshold <= 0:
            errors["anomaly_z_threshold"] = _("Use a positive number.")
        if errors:
            raise ValidationError(errors)


class HealthSample(models.Model):
    """One live check of one target. ``org`` is empty for the platform's own dependencies
    (database, Redis, Celery), which every organisation's overview shows."""

    org = models.ForeignKey(
        "orgs.Organization",
        verbose_name=_("organization"),
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
    )
    service = models.CharField(_("service"), max_length=32)
    # "connection:<id>", "ai_app:<id>", "account:<id>" or "" for the platform's dependencies.
    target = models.CharField(_("target"), max_length=64, blank=True, default="")
    target_name = models.CharField(_("target name"), max_length=200, blank=True, default="")
    ok = models.BooleanField(_("ok"))
    response_time_ms = models.PositiveIntegerField(_("response time (ms)"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=300, blank=True, default="")
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("health sample")
        verbose_name_plural = _("health samples")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["org", "service", "at"], name="mon_sample_org_service_at"),
            models.Index(fields=["org", "target", "at"], name="mon_sample_org_target_at"),
            models.Index(fields=["at"], name="mon_sample_at"),
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.target} {'ok' if self.ok else 'fail'}"


class AlertRule(OrgScopedModel):
    """Warning and critical thresholds of one metric, for one service or for all (``*``).

    response_time (seconds) and error_rate (percent) fire above the threshold; success_rate
    (percent) fires below it. A service's own rule wins over the ``*`` rule.
    """

    class Metric(models.TextChoices):
        RESPONSE_TIME = "response_time", _("Response time (s)")
        SUCCESS_RATE = "success_rate", _("Success rate (%)")
        ERROR_RATE = "error_rate", _("Error rate (%)")

    ALL_SERVICES = "*"
    # The seed's defaults.
    DEFAULTS = {
        Metric.RESPONSE_TIME: (5.0, 10.0),
        Metric.SUCCESS_RATE: (90.0, 80.0),
        Metric.ERROR_RATE: (5.0, 10.0),
    }

    service = models.CharField(_("service"), max_length=32, default=ALL_SERVICES)
    metric = models.CharField(_("metric"), max_length=20, choices=Metric.choices)
    warning = models.FloatField(_("warning threshold"))
    critical = models.FloatField(_("critical threshold"))
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        ordering = ["service", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "service", "metric"], name="monitoring_rule_org_service_metric"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.metric}"

    @property
    def fires_below(self) -> bool:
        return self.metric == self.Metric.SUCCESS_RATE

    def clean(self) -> None:
        if self.warning is None or self.critical is None:
            return
        if self.warning < 0 or self.critical < 0:
            raise ValidationError(_("Thresholds cannot be negative."))
        if (
            self.metric in (self.Metric.SUCCESS_RATE, self.Metric.ERROR_RATE)
            and max(self.warning, self.critical) > 100
        ):
            raise ValidationError(_("Rates are percentages (0 to 100)."))
        if self.fires_below and self.critical > self.warning:
            raise ValidationError(
                {"critical": _("The critical success rate must not exceed the warning one.")}
            )
        if not self.fires_below and self.critical < self.warning:
            raise ValidationError(
                {"critical": _("The critical threshold must not be below the warning one.")}
            )


class Alert(OrgScopedModel):
    """A raised alert. One open alert per fingerprint: a repeating condition bumps ``count``
    and ``last_seen_at``; the alert resolves by hand or when the condition has stayed clear
    for the organisation's ``auto_resolve_seconds`` (``clear_since`` tracks that)."""

    class Type(models.TextChoices):
        SERVICE_DOWN = "service_down", _("Service down")
        HIGH_RESPONSE_TIME = "high_response_time", _("High response time")
        LOW_SUCCESS_RATE = "low_success_rate", _("Low success rate")
        ANOMALY = "anomaly", _("Anomaly")
        THRESHOLD = "threshold", _("Threshold")
        QUOTA_EXCEEDED = "quota_exceeded", _("Quota exceeded")

    class Severity(models.TextChoices):
        LOW = "low", _("Low")
        MEDIUM = "medium", _("Medium")
        HIGH = "high", _("High")
        CRITICAL = "critical", _("Critical")

    SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}

    type = models.CharField(_("type"), max_length=24, choices=Type.choices)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    service = models.CharField(_("service"), max_length=32)
    target = models.CharField(_("target"), max_length=64, blank=True, default="")
    title = models.CharField(_("title"), max_length=200)
    message = models.TextField(_("message"), blank=True, default="")
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    first_seen_at = models.DateTimeField(_("first seen at"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen at"), default=timezone.now)
    count = models.PositiveIntegerField(_("count"), default=1)
    clear_since = models.DateTimeField(_("condition clear since"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    resolution = models.CharField(_("resolution"), max_length=200, blank=True, default="")

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "fingerprint"],
                condition=models.Q(resolved_at__isnull=True),
                name="monitoring_alert_one_open_per_fingerprint",
            )
        ]
        indexes = [
            models.Index(fields=["org", "fingerprint", "resolved_at"], name="mon_alert_org_fp"),
            models.Index(fields=["org", "-last_seen_at"], name="mon_alert_org_seen"),
            models.Index(fields=["org", "resolved_at", "severity"], name="mon_alert_org_open"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None
