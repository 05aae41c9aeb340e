"""Models of the billing app: prices, the cost ledger, budgets, reservations and usage aggregates.

Money is always ``Decimal``. Unit prices are per 1K tokens (or per unit for platform operations)
with six decimal places, so a cost computed from whole tokens is exact with ten decimal places
and is never rounded except for display.

The WeChat account, conversation and SOP run a ledger row belongs to are stored as plain,
indexed integer ids (``wechat_account_id``, ``conversation_id``, ``sop_run_id``): billing is
below those apps in the dependency order and must not import their models.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.models import OrgScopedModel, OrgScopedQuerySet

PRICE_DIGITS = {"max_digits": 14, "decimal_places": 6}
COST_DIGITS = {"max_digits": 24, "decimal_places": 10}
ZERO = Decimal("0")


class Kind(models.TextChoices):
    """What a metered call was for."""

    CHAT = "chat", _("Chat")
    INTENT = "intent", _("Intent")
    SENTIMENT = "sentiment", _("Sentiment")
    PLATFORM = "platform", _("Platform operation")


class ModelPrice(models.Model):
    """The price of one provider model (per 1K input/output tokens) or one platform operation
    (per unit, e.g. provider ``gewe``, model ``send_text``).

    Rows without ``org`` are global defaults; an organisation's own row for the same model wins
    over any global one. Among rows of the same level, the one with the latest ``valid_from`` not
    after the call's time is in force. ``provider="*"`` matches any provider (AI models are
    usually reached through FastGPT, Dify or an OpenAI-compatible gateway; the model decides
    the price), an exact provider wins over ``*``.
    """

    ANY_PROVIDER = "*"

    org = models.ForeignKey(
        "orgs.Organization",
        verbose_name=_("organization"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Empty for a global default price."),
    )
    provider = models.CharField(
        _("provider"), max_length=64, help_text=_("Provider slug, or * for any provider.")
    )
    model = models.CharField(
        _("model or operation"), max_length=128, help_text=_("Model name or platform operation.")
    )
    input_price_per_1k = models.DecimalField(
        _("input price per 1K tokens"),
        default=ZERO,
        validators=[MinValueValidator(ZERO)],
        **PRICE_DIGITS,
    )
    output_price_per_1k = models.DecimalField(
        _("output price per 1K tokens"),
        default=ZERO,
        validators=[MinValueValidator(ZERO)],
        **PRICE_DIGITS,
    )
    unit_price = models.DecimalField(
        _("price per unit"), default=ZERO, validators=[MinValueValidator(ZERO)], **PRICE_DIGITS
    )
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    valid_from = models.DateTimeField(_("valid from"), default=timezone.now)
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("model price")
        verbose_name_plural = _("model prices")
        ordering = ["provider", "model", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model", "valid_from"],
                condition=Q(org__isnull=True),
                name="billing_price_unique_global",
            ),
            models.UniqueConstraint(
                fields=["org", "provider", "model", "valid_from"],
                condition=Q(org__isnull=False),
                name="billing_price_unique_org",
            ),
        ]
        indexes = [models.Index(fields=["model", "provider"], name="billing_price_model_idx")]

    def __str__(self) -> str:
        scope = _("organisation price") if self.org_id else _("global price")
        return f"{self.provider}/{self.model} ({scope}, {self.valid_from:%Y-%m-%d})"

    def clean(self) -> None:
        super().clean()
        self.provider = (self.provider or "").strip().lower()
        self.model = (self.model or "").strip()
        self.currency = (self.currency or "").strip().upper()
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValidationError({"currency": _("Use a three-letter ISO currency code.")})


class CostLedger(models.Model):
    """One metered call (an AI call or a platform operation): append-only.

    ``request_id`` is unique per organisation, so recording the same call twice is a no-op.
    ``cost`` is computed from the local price table; ``provider_cost`` keeps what the provider
    itself reported (Dify), which may be in another currency or zero.
    """

    class UsageSource(models.TextChoices):
        REPORTED = "reported", _("Reported by the provider")
        ESTIMATED = "estimated", _("Estimated")

    org = models.ForeignKey(
        "orgs.Organization",
        verbose_name=_("organization"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    request_id = models.CharField(_("request id"), max_length=128)
    reservation = models.OneToOneField(
        "billing.Reservation",
        verbose_name=_("reservation"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="ledger",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Plain ids: those apps depend on billing, not the other way round.
    wechat_account_id = models.PositiveBigIntegerField(
        _("WeChat account id"), null=True, blank=True, db_index=True
    )
    conversation_id = models.PositiveBigIntegerField(
        _("conversation id"), null=True, blank=True, db_index=True
    )
    sop_run_id = models.PositiveBigIntegerField(
        _("SOP run id"), null=True, blank=True, db_index=True
    )
    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model or operation"), max_length=128)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    input_tokens = models.PositiveIntegerField(_("input tokens"), default=0)
    output_tokens = models.PositiveIntegerField(_("output tokens"), default=0)
    units = models.PositiveIntegerField(_("units"), default=0)
    cost = models.DecimalField(_("cost"), default=ZERO, **COST_DIGITS)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    provider_cost = models.DecimalField(
        _("provider-reported cost"), null=True, blank=True, **COST_DIGITS
    )
    provider_currency = models.CharField(_("provider currency"), max_length=8, blank=True)
    usage_source = models.CharField(
        _("usage source"), max_length=16, choices=UsageSource.choices, default=UsageSource.REPORTED
    )
    price = models.ForeignKey(
        ModelPrice,
        verbose_name=_("price applied"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Empty when no price was found (cost 0)."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        verbose_name = _("cost ledger entry")
        verbose_name_plural = _("cost ledger")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "request_id"], name="billing_ledger_unique_req"),
        ]
        indexes = [
            models.Index(fields=["org", "-created_at", "-id"], name="billing_ledger_org_time"),
        ]

    def __str__(self) -> str:
        from apps.core.money import format_money

        return f"{self.request_id}: {format_money(self.cost, self.currency, 4)}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Budget(OrgScopedModel):
    """A monthly money limit and/or token quota for the organisation, one user or one WeChat
    account. The month is the calendar month in the organisation's time zone.

    Crossing each soft threshold and 100 % raises one alert per period. At 100 % a budget with
    action ``block`` makes ``reserve`` refuse AI calls; ``warn`` only alerts.
    """

    class Scope(models.TextChoices):
        ORG = "org", _("Organization")
        USER = "user", _("User")
        ACCOUNT = "account", _("WeChat account")

    class Action(models.TextChoices):
        BLOCK = "block", _("Block AI calls")
        WARN = "warn", _("Warn only")

    HARD_THRESHOLD = 100

    name = models.CharField(_("name"), max_length=120, blank=True)
    scope = models.CharField(_("scope"), max_length=16, choices=Scope.choices, default=Scope.ORG)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    wechat_account_id = models.PositiveBigIntegerField(
        _("WeChat account id"), null=True, blank=True, db_index=True
    )
    money_limit = models.DecimalField(
        _("money limit per month"),
        null=True,
        blank=True,
        max_digits=18,
        decimal_places=4,
        validators=[MinValueValidator(ZERO)],
    )
    token_limit = models.PositiveBigIntegerField(_("token quota per month"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    soft_thresholds = models.JSONField(
        _("soft thresholds (%)"),
        default=list,
        blank=True,
        help_text=_("Percentages below 100 that raise a warning, e.g. [80, 95]."),
    )
    action = models.CharField(
        _("action at 100 %"), max_length=8, choices=Action.choices, default=Action.BLOCK
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("budget")
        verbose_name_plural = _("budgets")
        ordering = ["org_id", "scope", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org"], condition=Q(scope="org"), name="billing_budget_one_per_org"
            ),
            models.UniqueConstraint(
                fields=["org", "user"],
                condition=Q(scope="user"),
                name="billing_budget_one_per_user",
            ),
            models.UniqueConstraint(
                fields=["org", "wechat_account_id"],
                condition=Q(scope="account"),
                name="billing_budget_one_per_account",
            ),
        ]

    def __str__(self) -> str:
        target = {
            self.Scope.ORG: "",
            self.Scope.USER: f" {self.user}" if self.user_id else "",
            self.Scope.ACCOUNT: "",
        }.get(self.scope, "")
        return self.name or f"{self.get_scope_display()}{target}"

    @property
    def thresholds(self) -> list[int]:
        """Soft thresholds plus the hard 100 %, ascending."""
        return sorted({*(int(t) for t in self.soft_thresholds or []), self.HARD_THRESHOLD})

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.scope == self.Scope.ORG and (self.user_id or self.wechat_account_id):
            errors["scope"] = _("An organisation budget has no user or account.")
        if self.scope == self.Scope.USER:
            if not self.user_id:
                errors["user"] = _("A user budget needs a user.")
            if self.wechat_account_id:
                errors["wechat_account_id"] = _("A user budget has no account.")
        if self.scope == self.Scope.ACCOUNT:
            if not self.wechat_account_id:
                errors["wechat_account_id"] = _("An account budget needs a WeChat account id.")
            if self.user_id:
                errors["user"] = _("An account budget has no user.")
        if self.money_limit is None and self.token_limit is None:
            errors["money_limit"] = _("Set a money limit, a token quota, or both.")
        self.currency = (self.currency or "").strip().upper()
        if len(self.currency) != 3 or not self.currency.isalpha():
            errors["currency"] = _("Use a three-letter ISO currency code.")
        thresholds = self.soft_thresholds
        if not isinstance(thresholds, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 < t < 100 for t in thresholds
        ):
            errors["soft_thresholds"] = _("Give a list of whole percentages between 1 and 99.")
        else:
            self.soft_thresholds = sorted(set(thresholds))
        if errors:
            raise ValidationError(errors)


class Reservation(OrgScopedModel):
    """The estimated cost held for an in-flight call, so concurrent calls cannot overspend.

    A held reservation counts against budgets until it is settled (the ledger row replaces it),
    released (the call failed) or its ``expires_at`` passes (a crashed worker); the periodic
    task then marks it expired.
    """

    class Status(models.TextChoices):
        HELD = "held", _("Held")
        SETTLED = "settled", _("Settled")
        RELEASED = "released", _("Released")
        EXPIRED = "expired", _("Expired")

    request_id = models.CharField(_("request id"), max_length=128)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.HELD
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    wechat_account_id = models.PositiveBigIntegerField(
        _("WeChat account id"), null=True, blank=True
    )
    conversation_id = models.PositiveBigIntegerField(_("conversation id"), null=True, blank=True)
    sop_run_id = models.PositiveBigIntegerField(_("SOP run id"), null=True, blank=True)
    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model or operation"), max_length=128)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    estimated_input_tokens = models.PositiveIntegerField(_("estimated input tokens"), default=0)
    estimated_output_tokens = models.PositiveIntegerField(_("estimated output tokens"), default=0)
    estimated_units = models.PositiveIntegerField(_("estimated units"), default=0)
    estimated_cost = models.DecimalField(_("estimated cost"), default=ZERO, **COST_DIGITS)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    expires_at = models.DateTimeField(_("expires at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["org", "request_id"], name="billing_resv_unique_req"),
        ]
        indexes = [
            models.Index(
                fields=["org", "expires_at"],
                condition=Q(status="held"),
                name="billing_resv_held_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} ({self.get_status_display()})"

    @property
    def estimated_tokens(self) -> int:
        return self.estimated_input_tokens + self.estimated_output_tokens


class UsageDaily(models.Model):
    """Daily sums of the ledger per organisation-local date and dimension, updated in the same
    transaction as each ledger row so that usage reports never scan the ledger.

    ``user_id`` and ``wechat_account_id`` use 0 for "none" so that the upsert key is unique on
    every database (NULLs are distinct in unique constraints).
    """

    org = models.ForeignKey(
        "orgs.Organization",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organization"),
    )
    date = models.DateField(_("date"))
    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model or operation"), max_length=128)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    user_id = models.PositiveBigIntegerField(_("user id"), default=0)
    wechat_account_id = models.PositiveBigIntegerField(_("WeChat account id"), default=0)
    currency = models.CharField(_("currency"), max_length=3)
    calls = models.PositiveBigIntegerField(_("calls"), default=0)
    input_tokens = models.PositiveBigIntegerField(_("input tokens"), default=0)
    output_tokens = models.PositiveBigIntegerField(_("output tokens"), default=0)
    units = models.PositiveBigIntegerField(_("units"), default=0)
    cost = models.DecimalField(_("cost"), default=ZERO, **COST_DIGITS)

    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        verbose_name = _("daily usage")
        verbose_name_plural = _("daily usage")
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "org",
                    "date",
                    "provider",
                    "model",
                    "kind",
                    "user_id",
                    "wechat_account_id",
                    "currency",
                ],
                name="billing_usage_daily_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.org_id} {self.date} {self.model}: {self.cost} {self.currency}"


class UsageMonthly(models.Model):
    """Monthly sums per organisation-local month, user and account: what ``reserve`` reads to
    check budgets in O(accounts) instead of summing the month's days."""

    org = models.ForeignKey(
        "orgs.Organization",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organization"),
    )
    period = models.CharField(_("period"), max_length=7, help_text="YYYY-MM")
    user_id = models.PositiveBigIntegerField(_("user id"), default=0)
    wechat_account_id = models.PositiveBigIntegerField(_("WeChat account id"), default=0)
    currency = models.CharField(_("currency"), max_length=3)
    calls = models.PositiveBigIntegerField(_("calls"), default=0)
    tokens = models.PositiveBigIntegerField(_("tokens"), default=0)
    cost = models.DecimalField(_("cost"), default=ZERO, **COST_DIGITS)

    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        verbose_name = _("monthly usage")
        verbose_name_plural = _("monthly usage")
        constraints = [
            models.UniqueConstraint(
                fields=["org", "period", "user_id", "wechat_account_id", "currency"],
                name="billing_usage_monthly_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.org_id} {self.period}: {self.cost} {self.currency}"


class BudgetAlert(OrgScopedModel):
    """A threshold of a budget crossed in a period: unique, so each fires once per period."""

    budget = models.ForeignKey(
        Budget, verbose_name=_("budget"), on_delete=models.CASCADE, related_name="alerts"
    )
    period = models.CharField(_("period"), max_length=7, help_text="YYYY-MM")
    threshold = models.PositiveSmallIntegerField(_("threshold (%)"))
    metric = models.CharField(_("metric"), max_length=8)  # "money" or "tokens"
    used = models.DecimalField(_("used"), **COST_DIGITS)
    limit = models.DecimalField(_("limit"), max_digits=24, decimal_places=4)
    percent = models.DecimalField(_("percent"), max_digits=10, decimal_places=2)
    blocked = models.BooleanField(
        _("raised by a refused call"),
        default=False,
        help_text=_("Set when a call was refused because it would have exceeded the budget."),
    )

    class Meta:
        verbose_name = _("budget alert")
        verbose_name_plural = _("budget alerts")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period", "threshold"], name="billing_alert_once_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.budget} {self.period} {self.threshold}%"
