"""SOP campaigns: plans, their ordered steps, runs, enrolments and deliveries.

A ``SopPlan`` targets contacts of its WeChat accounts (friends, groups, tagged contacts or an
explicit list) and is triggered once at a date-time, on a cron schedule in the organisation's
time zone (one ``SopRun`` per occurrence), or relative to an event (a friend was added, a tag was
applied: one ``SopEnrollment`` per contact). Every (plan, contact, step, occurrence) has exactly
one ``SopDelivery`` row (unique), which the periodic tick claims when due and hands to the
outbound pipeline; nothing is ever sent twice, whatever is re-run or retried.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.core.models import OrgScopedModel


class SopPlan(OrgScopedModel):
    """A campaign: who gets it (targets), when (trigger), what (steps) and when to stop."""

    class TargetType(models.TextChoices):
        FRIENDS = "friends", _("Friends")
        GROUPS = "groups", _("Groups")
        TAG = "tag", _("Tagged contacts")
        LIST = "list", _("Explicit list")

    class TagMatch(models.TextChoices):
        ANY = "any", _("Any of the tags")
        ALL = "all", _("All of the tags")

    class Trigger(models.TextChoices):
        ONCE = "once", _("Once at a date and time")
        RECURRING = "recurring", _("Recurring (cron)")
        RELATIVE = "relative", _("Relative to an event")

    class RelativeEvent(models.TextChoices):
        CONTACT_ADDED = "contact_added", _("A friend was added")
        TAG_APPLIED = "tag_applied", _("A tag was applied")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        FINISHED = "finished", _("Finished")
        CANCELLED = "cancelled", _("Cancelled")

    class QuietHoursMode(models.TextChoices):
        ACCOUNT = "account", _("The account's quiet hours")
        CUSTOM = "custom", _("The plan's own quiet hours")
        IGNORE = "ignore", _("No quiet hours")

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    accounts = models.ManyToManyField(
        "wechat_accounts.WeChatAccount",
        verbose_name=_("send from accounts"),
        related_name="sop_plans",
        blank=True,
    )
    target_type = models.CharField(
        _("target type"), max_length=16, choices=TargetType.choices, default=TargetType.FRIENDS
    )
    target_contact_ids = models.JSONField(
        _("target contacts"),
        default=list,
        blank=True,
        help_text=_("Contact ids when the target type is an explicit list."),
    )
    tag_match = models.CharField(
        _("tag rule"), max_length=8, choices=TagMatch.choices, default=TagMatch.ANY
    )
    include_tags = models.ManyToManyField(
        "wechat_accounts.Tag",
        verbose_name=_("with tags"),
        related_name="+",
        blank=True,
    )
    exclude_tags = models.ManyToManyField(
        "wechat_accounts.Tag",
        verbose_name=_("without tags"),
        related_name="+",
        blank=True,
    )
    trigger = models.CharField(
        _("trigger"), max_length=16, choices=Trigger.choices, default=Trigger.ONCE
    )
    start_at = models.DateTimeField(
        _("start at"), null=True, blank=True, help_text=_("Once: when (empty: on activation).")
    )
    cron = models.CharField(
        _("cron expression"),
        max_length=100,
        blank=True,
        help_text=_("Recurring: minute hour day month weekday, in the organisation's time zone."),
    )
    relative_event = models.CharField(
        _("relative to"), max_length=16, choices=RelativeEvent.choices, blank=True
    )
    relative_tag = models.ForeignKey(
        "wechat_accounts.Tag",
        verbose_name=_("applied tag"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    enroll_existing = models.BooleanField(
        _("enrol matching contacts on activation"),
        default=False,
        help_text=_("Relative plans: also enrol the contacts that match when activated."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    stop_on_reply = models.BooleanField(_("stop when the contact replies"), default=True)
    stop_on_handoff = models.BooleanField(_("stop when handed to a person"), default=True)
    stop_tag = models.ForeignKey(
        "wechat_accounts.Tag",
        verbose_name=_("stop when tagged"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    stop_after = models.DateTimeField(_("stop after"), null=True, blank=True)
    quiet_hours_mode = models.CharField(
        _("quiet hours"),
        max_length=16,
        choices=QuietHoursMode.choices,
        default=QuietHoursMode.ACCOUNT,
    )
    quiet_hours_start = models.TimeField(_("quiet hours start"), null=True, blank=True)
    quiet_hours_end = models.TimeField(_("quiet hours end"), null=True, blank=True)
    ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("AI app"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("For AI-personalised steps; default: the account's, then the organisation's."),
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        verbose_name=_("beat entry"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("SOP plan")
        verbose_name_plural = _("SOP plans")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="sop_plan_org_name")]
        indexes = [models.Index(fields=["org", "status"], name="sop_plan_org_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def active_step_list(self) -> list:
        """The active steps in order (prefetched by ``selectors.plan_list`` when listed)."""
        prefetched = getattr(self, "prefetched_steps", None)
        if prefetched is not None:
            return prefetched
        return list(self.steps.filter(is_active=True).order_by("order", "id"))

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.trigger == self.Trigger.RECURRING:
            from croniter import croniter

            if not self.cron or not croniter.is_valid(self.cron) or len(self.cron.split()) != 5:
                errors["cron"] = _("Give a cron expression with five fields.")
        if self.trigger == self.Trigger.RELATIVE:
            if not self.relative_event:
                errors["relative_event"] = _("Choose the event the steps are relative to.")
            elif self.relative_event == self.RelativeEvent.TAG_APPLIED and not self.relative_tag_id:
                errors["relative_tag"] = _("Choose the tag.")
        if self.target_type == self.TargetType.LIST and not (
            isinstance(self.target_contact_ids, list)
            and all(isinstance(i, int) for i in self.target_contact_ids)
        ):
            errors["target_contact_ids"] = _("Give a list of contact ids.")
        if self.quiet_hours_mode == self.QuietHoursMode.CUSTOM and (
            self.quiet_hours_start is None or self.quiet_hours_end is None
        ):
            errors["quiet_hours_end"] = _("Give both the start and the end of the quiet hours.")
        for name in ("relative_tag_id", "stop_tag_id", "ai_app_id"):
            value = getattr(self, name)
            if value and self.org_id:
                related = self._meta.get_field(name[:-3]).related_model
                if not related.objects.filter(org_id=self.org_id, pk=value).exists():
                    errors[name[:-3]] = _("Unknown object.")
        if errors:
            raise ValidationError(errors)


class SopStep(OrgScopedModel):
    """One message of a plan, sent ``delay`` after enrolment (or run start), optionally at a
    time of day in the organisation's time zone, to contacts meeting the condition."""

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")
        FILE = "file", _("File")
        VIDEO = "video", _("Video")
        LINK = "link", _("Link")
        AI = "ai", _("AI-personalised text")

    class Condition(models.TextChoices):
        NONE = "", _("Always")
        HAS_TAG = "has_tag", _("Only if the contact has the tag")
        LACKS_TAG = "lacks_tag", _("Only if the contact lacks the tag")

    class EndAction(models.TextChoices):
        NONE = "", _("Nothing")
        ADD_TAG = "add_tag", _("Add a tag")
        REMOVE_TAG = "remove_tag", _("Remove a tag")
        MOVE_TO_PLAN = "move_to_plan", _("Move to another plan")

    plan = models.ForeignKey(
        SopPlan, verbose_name=_("plan"), on_delete=models.CASCADE, related_name="steps"
    )
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    delay_days = models.PositiveIntegerField(
        _("days after"), default=0, validators=[MaxValueValidator(3650)]
    )
    delay_hours = models.PositiveIntegerField(
        _("hours after"), default=0, validators=[MaxValueValidator(24 * 365)]
    )
    delay_minutes = models.PositiveIntegerField(
        _("minutes after"), default=0, validators=[MaxValueValidator(60 * 24 * 365)]
    )
    send_time = models.TimeField(
        _("time of day"),
        null=True,
        blank=True,
        help_text=_("Send on that day at this local time (never before the start)."),
    )
    kind = models.CharField(_("content"), max_length=8, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(
        _("text"),
        blank=True,
        help_text=_("Variables: {nickname}, {remark}, {name}, {account_name}, custom attributes."),
    )
    url = models.URLField(_("URL"), max_length=1000, blank=True)
    # media: an uploaded file (apps.media) sent instead of a URL (image, file or video steps).
    media_file = models.ForeignKey(
        "media.MediaFile",
        verbose_name=_("uploaded file"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    file_name = models.CharField(_("file name"), max_length=200, blank=True)
    title = models.CharField(_("link title"), max_length=200, blank=True)
    description = models.CharField(_("link description"), max_length=500, blank=True)
    ai_prompt = models.TextField(
        _("AI prompt"),
        blank=True,
        help_text=_("Variables as in text plus {profile} and {recent_messages}."),
    )
    condition = models.CharField(
        _("condition"), max_length=16, choices=Condition.choices, default="", blank=True
    )
    condition_tag = models.ForeignKey(
        "wechat_accounts.Tag",
        verbose_name=_("condition tag"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    end_action = models.CharField(
        _("after sending"), max_length=16, choices=EndAction.choices, default="", blank=True
    )
    end_tag = models.ForeignKey(
        "wechat_accounts.Tag",
        verbose_name=_("tag to add or remove"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    end_plan = models.ForeignKey(
        SopPlan,
        verbose_name=_("move to plan"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("Removed steps keep their history, inactive.")
    )

    class Meta:
        verbose_name = _("SOP step")
        verbose_name_plural = _("SOP steps")
        ordering = ["plan", "order", "id"]
        indexes = [models.Index(fields=["plan", "is_active", "order"], name="sop_step_plan")]

    def __str__(self) -> str:
        return f"#{self.order} {self.get_kind_display()}"

    @property
    def offset_seconds(self) -> int:
        return self.delay_days * 86400 + self.delay_hours * 3600 + self.delay_minutes * 60

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.kind == self.Kind.TEXT and not (self.text or "").strip():
            errors["text"] = _("A text step needs text.")
        media_kinds = (self.Kind.IMAGE, self.Kind.FILE, self.Kind.VIDEO)
        if self.kind == self.Kind.LINK and not self.url:
            errors["url"] = _("This kind of step needs a URL.")
        elif self.kind in media_kinds and not (self.url or self.media_file_id):
            errors["url"] = _("This kind of step needs a URL or an uploaded file.")
        if self.media_file_id and self.kind not in media_kinds:
            errors["media_file"] = _("Only image, file and video steps carry a file.")
        if self.media_file_id and self.media_file.org_id != self.org_id:
            errors["media_file"] = _("Unknown file.")
        elif self.media_file_id and self.kind in (self.Kind.IMAGE, self.Kind.VIDEO):
            if self.media_file.kind != self.kind:
                errors["media_file"] = _("This file is not a %(kind)s.") % {"kind": self.kind}
        if self.kind == self.Kind.LINK and not (self.title or self.text):
            errors["title"] = _("A link needs a title.")
        if self.kind == self.Kind.AI and not (self.ai_prompt or "").strip():
            errors["ai_prompt"] = _("An AI step needs a prompt.")
        if self.condition and not self.condition_tag_id:
            errors["condition_tag"] = _("Choose the tag of the condition.")
        if self.end_action in (self.EndAction.ADD_TAG, self.EndAction.REMOVE_TAG):
            if not self.end_tag_id:
                errors["end_tag"] = _("Choose the tag.")
        if self.end_action == self.EndAction.MOVE_TO_PLAN:
            if not self.end_plan_id:
                errors["end_plan"] = _("Choose the plan.")
            elif self.end_plan_id == self.plan_id:
                errors["end_plan"] = _("A plan cannot move contacts into itself.")
        for name in ("condition_tag_id", "end_tag_id", "end_plan_id"):
            value = getattr(self, name)
            if value and self.org_id:
                related = self._meta.get_field(name[:-3]).related_model
                if not related.objects.filter(org_id=self.org_id, pk=value).exists():
                    errors[name[:-3]] = _("Unknown object.")
        if errors:
            raise ValidationError(errors)


class SopRun(OrgScopedModel):
    """One occurrence of a once or recurring plan (``occurrence`` is its key: "once" or the
    ISO local fire time), so two beats firing at once start it once."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        CANCELLED = "cancelled", _("Cancelled")

    plan = models.ForeignKey(
        SopPlan, verbose_name=_("plan"), on_delete=models.CASCADE, related_name="runs"
    )
    occurrence = models.CharField(_("occurrence"), max_length=40)
    started_at = models.DateTimeField(_("starts at"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    target_count = models.PositiveIntegerField(_("targets"), default=0)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("SOP run")
        verbose_name_plural = _("SOP runs")
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "occurrence"], name="sop_run_plan_occurrence")
        ]

    def __str__(self) -> str:
        return f"{self.plan} @ {self.occurrence}"


class SopEnrollment(OrgScopedModel):
    """One contact going through a plan (per occurrence for once / recurring plans)."""

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        COMPLETED = "completed", _("Completed")
        STOPPED = "stopped", _("Stopped")

    plan = models.ForeignKey(
        SopPlan, verbose_name=_("plan"), on_delete=models.CASCADE, related_name="enrollments"
    )
    run = models.ForeignKey(
        SopRun,
        verbose_name=_("run"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="enrollments",
    )
    contact = models.ForeignKey(
        "wechat_accounts.Contact",
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        related_name="sop_enrollments",
    )
    occurrence = models.CharField(_("occurrence"), max_length=40)
    enrolled_at = models.DateTimeField(_("enrolled at"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.ACTIVE)
    stop_reason = models.CharField(_("stop reason"), max_length=200, blank=True)
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)

    class Meta:
        verbose_name = _("SOP enrolment")
        verbose_name_plural = _("SOP enrolments")
        ordering = ["-enrolled_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "contact", "occurrence"], name="sop_enrollment_unique"
            )
        ]
        indexes = [models.Index(fields=["plan", "state"], name="sop_enrollment_plan_state")]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.plan_id}"


class SopDelivery(OrgScopedModel):
    """One step to one contact (one occurrence). The unique key makes a double send
    impossible; ``message`` is the outbound pipeline's row once handed over."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        PROCESSING = "processing", _("Processing")
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")

    FINAL = (Status.SENT, Status.FAILED, Status.SKIPPED)

    plan = models.ForeignKey(
        SopPlan, verbose_name=_("plan"), on_delete=models.CASCADE, related_name="deliveries"
    )
    run = models.ForeignKey(
        SopRun,
        verbose_name=_("run"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    enrollment = models.ForeignKey(
        SopEnrollment,
        verbose_name=_("enrolment"),
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    step = models.ForeignKey(
        SopStep, verbose_name=_("step"), on_delete=models.PROTECT, related_name="deliveries"
    )
    contact = models.ForeignKey(
        "wechat_accounts.Contact",
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        related_name="sop_deliveries",
    )
    account = models.ForeignKey(
        "wechat_accounts.WeChatAccount",
        verbose_name=_("account"),
        on_delete=models.CASCADE,
        related_name="sop_deliveries",
    )
    occurrence = models.CharField(_("occurrence"), max_length=40)
    due_at = models.DateTimeField(_("due at"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.SCHEDULED
    )
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    rendered_text = models.TextField(_("rendered text"), blank=True)
    message = models.ForeignKey(
        "conversations.Message",
        verbose_name=_("message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claim_token = models.CharField(_("claim token"), max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("SOP delivery")
        verbose_name_plural = _("SOP deliveries")
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "contact", "step", "occurrence"], name="sop_delivery_unique"
            )
        ]
        indexes = [
            # The tick: due scheduled rows, oldest first (partial: stays small).
            models.Index(
                fields=["due_at", "id"],
                name="sop_delivery_due",
                condition=Q(status="scheduled"),
            ),
            models.Index(
                fields=["status", "lease_expires_at"],
                name="sop_delivery_lease",
                condition=Q(status__in=["processing", "queued"]),
            ),
            models.Index(fields=["plan", "status"], name="sop_delivery_plan_status"),
            models.Index(fields=["run", "status"], name="sop_delivery_run_status"),
            models.Index(fields=["enrollment", "status"], name="sop_delivery_enr_status"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"
