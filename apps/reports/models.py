"""The reports app's own tables: derived figures, never written by another app.

- ``ConversationEvent``: the history other apps do not keep (every handoff with its reason and
  the moment a person answered it; every resolution). ``Conversation`` only stores the latest
  handoff and resets ``resolved_at`` on reopening, so these rows are recorded as they happen.
- ``ConversationCycle``: one row per conversation *cycle* (from the first customer message after
  the previous resolution to the next resolution) with its clocks; percentiles come from here.
- ``DailyStat``: counters per organisation, local day and dimension (WeChat account, agent, AI
  app; ``label_id`` 0 is the total row, other values repeat the figures of that label's
  conversations). ``SopStepDaily``: SOP deliveries per plan step and day.

Everything except ``ConversationEvent`` is recomputed from the raw rows by
``apps.reports.services`` (incrementally for the days that changed, or by ``reports_rebuild``).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.models import OrgScopedModel

# Columns of DailyStat: (field name, is money).
COUNTERS: list[str] = [
    "inbound_messages",
    "conversations_started",
    "conversations_resolved",
    "ai_turns",
    "ai_turns_answered",
    "ai_messages",
    "ai_failures",
    "handoffs",
    "handoffs_keyword",
    "handoffs_sentiment",
    "handoffs_ai_failed",
    "handoffs_budget",
    "handoffs_phone_reply",
    "handoffs_agent",
    "handoffs_no_ai_app",
    "handoffs_other",
    "agent_messages",
    "phone_messages",
    "sop_messages",
    "outbound_messages",
    "outbound_failed",
    "delivery_unknown",
    "drafts_sent",
    "drafts_edited",
    "drafts_discarded",
    "offline_seconds",
    "rate_limit_deferrals",
]
MONEY: list[str] = ["ai_cost", "platform_cost", "ai_cost_answers"]
HANDOFF_REASONS = [
    "keyword",
    "sentiment",
    "ai_failed",
    "budget",
    "phone_reply",
    "agent",
    "no_ai_app",
]


class ConversationEvent(OrgScopedModel):
    """A handoff to a person or a resolution, as it happened (the raw history of reports)."""

    class Kind(models.TextChoices):
        HANDOFF = "handoff", _("Handoff")
        RESOLVED = "resolved", _("Resolved")

    conversation = models.ForeignKey(
        "conversations.Conversation",
        verbose_name=_("conversation"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    reason = models.CharField(_("reason"), max_length=32, blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("conversation event")
        verbose_name_plural = _("conversation events")
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "kind", "at"], name="reports_event_conv_kind_at"
            )
        ]
        indexes = [
            models.Index(fields=["org", "at"], name="reports_event_org_at"),
            models.Index(fields=["conversation", "at"], name="reports_event_conv_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.reason} {self.at:%Y-%m-%d %H:%M}"


class ConversationCycle(OrgScopedModel):
    """The clocks of one conversation cycle (see the README's "Reports" section).

    ``agent_id`` is the person who first answered in the cycle (the account owner for a reply
    typed on the phone), else the conversation's assignee; 0 when neither exists.
    """

    conversation = models.ForeignKey(
        "conversations.Conversation",
        verbose_name=_("conversation"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    started_at = models.DateTimeField(_("started at"))
    day = models.DateField(_("day"))
    account_id = models.BigIntegerField(_("WeChat account"), default=0)
    agent_id = models.BigIntegerField(_("agent"), default=0)
    ai_app_id = models.BigIntegerField(_("AI app"), default=0)
    first_ai_seconds = models.FloatField(_("first AI response (s)"), null=True, blank=True)
    first_human_seconds = models.FloatField(_("first human response (s)"), null=True, blank=True)
    handoffs = models.PositiveIntegerField(_("handoffs"), default=0)
    handoff_wait_seconds = models.FloatField(
        _("wait for a person after the first handoff (s)"), null=True, blank=True
    )
    waiting_since = models.DateTimeField(_("waiting for a person since"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolution_seconds = models.FloatField(_("resolution time (s)"), null=True, blank=True)
    ai_messages = models.PositiveIntegerField(_("AI messages"), default=0)
    human_messages = models.PositiveIntegerField(_("human messages"), default=0)

    class Meta:
        verbose_name = _("conversation cycle")
        verbose_name_plural = _("conversation cycles")
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "started_at"], name="reports_cycle_conv_start"
            )
        ]
        indexes = [
            models.Index(fields=["org", "day"], name="reports_cycle_org_day"),
            models.Index(fields=["org", "agent_id", "day"], name="reports_cycle_org_agent"),
        ]

    def __str__(self) -> str:
        return f"cycle {self.conversation_id} @ {self.started_at:%Y-%m-%d %H:%M}"


class DailyStat(OrgScopedModel):
    """Counters of one organisation, local day and dimension combination."""

    day = models.DateField(_("day"))
    account_id = models.BigIntegerField(_("WeChat account"), default=0)
    agent_id = models.BigIntegerField(_("agent"), default=0)
    ai_app_id = models.BigIntegerField(_("AI app"), default=0)
    label_id = models.BigIntegerField(_("label"), default=0)

    inbound_messages = models.PositiveIntegerField(_("customer messages"), default=0)
    conversations_started = models.PositiveIntegerField(_("conversations started"), default=0)
    conversations_resolved = models.PositiveIntegerField(_("conversations resolved"), default=0)
    ai_turns = models.PositiveIntegerField(_("AI turns"), default=0)
    ai_turns_answered = models.PositiveIntegerField(_("AI turns answered"), default=0)
    ai_messages = models.PositiveIntegerField(_("AI messages"), default=0)
    ai_failures = models.PositiveIntegerField(_("AI failures"), default=0)
    handoffs = models.PositiveIntegerField(_("handoffs"), default=0)
    handoffs_keyword = models.PositiveIntegerField(_("handoffs: keyword"), default=0)
    handoffs_sentiment = models.PositiveIntegerField(_("handoffs: sentiment"), default=0)
    handoffs_ai_failed = models.PositiveIntegerField(_("handoffs: AI failure"), default=0)
    handoffs_budget = models.PositiveIntegerField(_("handoffs: budget"), default=0)
    handoffs_phone_reply = models.PositiveIntegerField(_("handoffs: phone reply"), default=0)
    handoffs_agent = models.PositiveIntegerField(_("handoffs: agent takeover"), default=0)
    handoffs_no_ai_app = models.PositiveIntegerField(_("handoffs: no AI app"), default=0)
    handoffs_other = models.PositiveIntegerField(_("handoffs: other"), default=0)
    agent_messages = models.PositiveIntegerField(_("agent messages"), default=0)
    phone_messages = models.PositiveIntegerField(_("phone messages"), default=0)
    sop_messages = models.PositiveIntegerField(_("SOP messages"), default=0)
    outbound_messages = models.PositiveIntegerField(_("messages out"), default=0)
    outbound_failed = models.PositiveIntegerField(_("send failures"), default=0)
    delivery_unknown = models.PositiveIntegerField(_("delivery unknown"), default=0)
    drafts_sent = models.PositiveIntegerField(_("drafts sent"), default=0)
    drafts_edited = models.PositiveIntegerField(_("drafts edited"), default=0)
    drafts_discarded = models.PositiveIntegerField(_("drafts discarded"), default=0)
    offline_seconds = models.PositiveIntegerField(_("time offline (s)"), default=0)
    rate_limit_deferrals = models.PositiveIntegerField(_("rate-limit deferrals"), default=0)
    ai_cost = models.DecimalField(_("AI cost"), max_digits=24, decimal_places=10, default=0)
    platform_cost = models.DecimalField(
        _("platform cost"), max_digits=24, decimal_places=10, default=0
    )
    # The AI cost of turns that produced an answer (the numerator of "cost per AI answer").
    ai_cost_answers = models.DecimalField(
        _("AI cost of answers"), max_digits=24, decimal_places=10, default=0
    )

    class Meta:
        verbose_name = _("daily figures")
        verbose_name_plural = _("reports")
        ordering = ["-day", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "day", "account_id", "agent_id", "ai_app_id", "label_id"],
                name="reports_daily_unique",
            )
        ]
        indexes = [
            # Equality on the dimensions first (roll-up rows are -1), the day range last.
            models.Index(
                fields=["org", "label_id", "account_id", "agent_id", "ai_app_id", "day"],
                name="reports_daily_dims_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.org_id} {self.day}"


class SendDeferralHour(OrgScopedModel):
    """How often the send pipeline postponed a message of one account in one UTC hour because a
    rate limit was reached (counted from ``apps.core.events.send_rate_limited``: no other row
    keeps this, so it is raw history like ``ConversationEvent``)."""

    account_id = models.BigIntegerField(_("WeChat account"))
    hour = models.DateTimeField(_("hour"))
    count = models.PositiveIntegerField(_("deferrals"), default=0)

    class Meta:
        verbose_name = _("rate-limit deferrals")
        verbose_name_plural = _("rate-limit deferrals")
        ordering = ["-hour", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "account_id", "hour"], name="reports_deferral_org_account_hour"
            )
        ]
        indexes = [models.Index(fields=["org", "hour"], name="reports_deferral_org_hour")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.hour:%Y-%m-%d %H}: {self.count}"


class SopStepDaily(OrgScopedModel):
    """SOP deliveries of one plan step and WeChat account on one local day (the due day)."""

    day = models.DateField(_("day"))
    plan_id = models.BigIntegerField(_("plan"))
    step_id = models.BigIntegerField(_("step"))
    account_id = models.BigIntegerField(_("WeChat account"), default=0)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    replied = models.PositiveIntegerField(_("replied within 24 h"), default=0)

    class Meta:
        verbose_name = _("SOP step figures")
        verbose_name_plural = _("SOP step figures")
        ordering = ["-day", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "day", "plan_id", "step_id", "account_id"],
                name="reports_sop_daily_unique",
            )
        ]
        indexes = [models.Index(fields=["org", "day"], name="reports_sop_org_day")]

    def __str__(self) -> str:
        return f"{self.org_id} {self.day} step {self.step_id}"
