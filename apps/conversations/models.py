"""Conversations, their messages, AI turns, labels and canned replies.

A ``Conversation`` is one chat of one WeChat account with one contact (a person or a group).
Inbound messages arrive through the webhook inbox (``apps.integrations.webhooks``); outbound
ones go through the one send pipeline (``apps.conversations.outbound.send``), whose record is
the same ``Message`` model. An ``AITurn`` is one AI answer, keyed by the last customer message it
answers, so a redelivered or retried turn never answers twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.models import OrgScopedModel
from apps.wechat_accounts.models import ReplyMode


class Conversation(OrgScopedModel):
    """A chat with one customer (or one group) on one WeChat account of an organisation."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending")
        RESOLVED = "resolved", _("Resolved")
        SNOOZED = "snoozed", _("Snoozed")

    class Mode(models.TextChoices):
        AI = "ai", _("AI")
        HUMAN = "human", _("Human")

    class Priority(models.IntegerChoices):
        LOW = 0, _("Low")
        NORMAL = 1, _("Normal")
        HIGH = 2, _("High")
        URGENT = 3, _("Urgent")

    class AISession(models.TextChoices):
        """The seeds' session lifecycle of the AI provider's conversation (computed)."""

        NONE = "none", _("None")
        ACTIVE = "active", _("Active")
        IDLE = "idle", _("Idle")
        EXPIRED = "expired", _("Expired")

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
    snooze_until = models.DateTimeField(_("snoozed until"), null=True, blank=True)
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=Priority.choices, default=Priority.NORMAL
    )
    labels = models.ManyToManyField(
        "conversations.Label", verbose_name=_("labels"), blank=True, related_name="conversations"
    )
    ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("AI app"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Overrides the account's default AI app."),
    )
    # The provider's own session (FastGPT chatId / Dify conversation_id); a new one starts after
    # CONVERSATION_AI_SESSION_EXPIRE_SECONDS without AI activity.
    ai_conversation_id = models.CharField(
        _("AI provider conversation id"), max_length=250, blank=True
    )
    ai_last_activity_at = models.DateTimeField(_("last AI activity"), null=True, blank=True)
    # The newest customer message an AI turn has dealt with (answered, or handed to a person).
    ai_answered_message_id = models.BigIntegerField(_("AI answered up to message"), default=0)
    ai_paused_until = models.DateTimeField(_("AI paused until"), null=True, blank=True)
    handoff_reason = models.CharField(_("handoff reason"), max_length=32, blank=True)
    handed_off_at = models.DateTimeField(_("handed off at"), null=True, blank=True)
    last_inbound_at = models.DateTimeField(_("last customer message at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    # Overrides the account's AI reply mode (auto / draft / off); empty: the account's.
    reply_mode = models.CharField(
        _("AI reply mode"),
        max_length=8,
        choices=ReplyMode.choices,
        blank=True,
        help_text=_("Empty uses the WeChat account's reply mode."),
    )

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at", "-id"]
        indexes = [
            models.Index(fields=["org", "-last_message_at"]),
            models.Index(fields=["org", "status", "mode"], name="conv_org_status_mode"),
            models.Index(fields=["org", "updated_at"], name="conv_org_updated"),
            models.Index(fields=["status", "snooze_until"], name="conv_snooze_due"),
            # The workspace's views: "mine", "unassigned" and the assignee filter, newest first;
            # "waiting" (handed to a person, not yet picked up), oldest first.
            models.Index(
                fields=["org", "assignee", "-last_message_at"], name="conv_org_assignee_recent"
            ),
            models.Index(
                fields=["org", "handed_off_at", "id"],
                condition=models.Q(mode="human", status="pending"),
                name="conv_org_waiting",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "account", "contact"], name="conversation_org_account_contact"
            )
        ]

    def __str__(self) -> str:
        if self.contact_id:
            return str(self.contact)
        return str(_("Conversation %(id)s") % {"id": self.pk})

    def ai_session_state(self, now=None) -> str:
        """active / idle / expired / none, from the last AI activity (seed 003)."""
        from django.utils import timezone

        if not self.ai_conversation_id or self.ai_last_activity_at is None:
            return self.AISession.NONE
        age = ((now or timezone.now()) - self.ai_last_activity_at).total_seconds()
        if age >= settings.CONVERSATION_AI_SESSION_EXPIRE_SECONDS:
            return self.AISession.EXPIRED
        if age >= settings.CONVERSATION_AI_SESSION_IDLE_SECONDS:
            return self.AISession.IDLE
        return self.AISession.ACTIVE


class Message(OrgScopedModel):
    """One message of a conversation, inbound from the customer or outbound to them."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("Inbound")
        OUTBOUND = "outbound", _("Outbound")

    class SenderKind(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
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
        EMOJI = "emoji", _("Emoji")
        SYSTEM = "system", _("System notice")
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

    # -- the outbound pipeline (apps.conversations.outbound.send) -----------------------------
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

    # -- media (apps.media): the stored file of an image / voice / video / file message --------
    class MediaStatus(models.TextChoices):
        NONE = "", _("No media")
        PENDING = "pending", _("Fetching media")
        READY = "ready", _("Media ready")
        FAILED = "failed", _("Media fetch failed")

    media_file = models.ForeignKey(
        "media.MediaFile",
        verbose_name=_("media file"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    media_status = models.CharField(
        _("media status"), max_length=16, choices=MediaStatus.choices, blank=True, default=""
    )
    media_error = models.CharField(_("media error"), max_length=300, blank=True)
    media_attempts = models.PositiveSmallIntegerField(_("media fetch attempts"), default=0)

    # -- inbound details ---------------------------------------------------------------------
    # In groups: who wrote it (the customer of a private chat is the conversation's contact).
    sender_wxid = models.CharField(_("sender wxid"), max_length=128, blank=True)
    sender_name = models.CharField(_("sender name"), max_length=200, blank=True)
    mentions_account = models.BooleanField(_("mentions the account"), default=False)
    # Decided at ingestion by the reply policy: this customer message asks for an AI answer.
    triggers_ai = models.BooleanField(_("triggers the AI"), default=False)
    platform_created_at = models.DateTimeField(_("platform time"), null=True, blank=True)

    # -- AI metadata (replies: app, usage, cost, latency; inbound: intent, sentiment) ---------
    ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("AI app"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    ai_input_tokens = models.PositiveIntegerField(_("input tokens"), null=True, blank=True)
    ai_output_tokens = models.PositiveIntegerField(_("output tokens"), null=True, blank=True)
    ai_cost = models.DecimalField(
        _("AI cost"), max_digits=18, decimal_places=10, null=True, blank=True
    )
    ai_latency_ms = models.PositiveIntegerField(_("AI latency (ms)"), null=True, blank=True)
    intent = models.CharField(_("intent"), max_length=32, blank=True)
    sentiment = models.CharField(_("sentiment"), max_length=16, blank=True)
    sentiment_score = models.FloatField(_("sentiment score"), null=True, blank=True)

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
        # Read by people (admin titles, links): who wrote what, never "message 5 (inbound)".
        text = (self.text or "").strip().replace("\n", " ")
        body = text[:30] + ("…" if len(text) > 30 else "") if text else self.get_kind_display()
        return f"{self.get_sender_kind_display()}：{body}"

    @property
    def display_text(self) -> str:
        """The text, or a placeholder such as "[image]" for media (AI context, previews)."""
        if self.text:
            return self.text
        return f"[{self.kind}]"


class AITurn(OrgScopedModel):
    """One AI answer of a conversation, keyed by the newest customer message it answers.

    The unique (conversation, last_message) pair makes a turn idempotent: a retried task, a
    redelivered webhook or a second worker finds the row and never answers again. Reply chunks
    are queued with the idempotency key ``ai:<turn id>:<n>``.

    ``lease_until``: a running turn's lease, renewed while its worker works on it. A turn still
    ``running`` after its lease (worker killed, transaction rolled back) is re-queued or closed
    with a reason by the periodic recovery (``apps.conversations.turn_recovery``).
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        ANSWERED = "answered", _("Answered")
        HANDED_OFF = "handed_off", _("Handed to a person")
        SKIPPED = "skipped", _("Skipped")
        DRAFTED = "drafted", _("Drafted for an agent")

    conversation = models.ForeignKey(
        Conversation,
        verbose_name=_("conversation"),
        on_delete=models.CASCADE,
        related_name="ai_turns",
    )
    last_message = models.ForeignKey(
        Message, verbose_name=_("last customer message"), on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("AI app"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    question = models.TextField(_("question"), blank=True)
    answer = models.TextField(_("answer"), blank=True)
    input_tokens = models.PositiveIntegerField(_("input tokens"), null=True, blank=True)
    output_tokens = models.PositiveIntegerField(_("output tokens"), null=True, blank=True)
    cost = models.DecimalField(_("cost"), max_digits=18, decimal_places=10, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Groups: the member this turn answers (each asker gets their own answer).
    member_wxid = models.CharField(_("group member"), max_length=128, blank=True)
    # Failover: how many apps failed before ``ai_app`` answered, and one entry per app tried:
    # {"ai_app_id", "name", "outcome": answered|failed|skipped_open, "error"}.
    failovers = models.PositiveSmallIntegerField(_("failovers"), default=0)
    app_attempts = models.JSONField(_("apps tried"), default=list, blank=True)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)

    class Meta:
        verbose_name = _("AI turn")
        verbose_name_plural = _("AI turns")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "last_message"], name="aiturn_conversation_last_message"
            )
        ]
        indexes = [
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status="running"),
                name="aiturn_running_lease",
            )
        ]

    def __str__(self) -> str:
        return str(
            _("AI reply %(time)s (%(status)s)")
            % {
                "time": self.created_at.strftime("%Y-%m-%d %H:%M") if self.created_at else "",
                "status": self.get_status_display(),
            }
        )


class AISession(OrgScopedModel):
    """The AI provider's session (FastGPT chatId / Dify conversation_id) of one conversation
    and, in groups, one member, per AI app (seed 004's per user and group key).

    ``state`` is moved by the lifecycle beat task: active -> idle -> expired. An expired
    session has no provider id left: the next turn starts a new provider session.
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        IDLE = "idle", _("Idle")
        EXPIRED = "expired", _("Expired")

    conversation = models.ForeignKey(
        Conversation,
        verbose_name=_("conversation"),
        on_delete=models.CASCADE,
        related_name="ai_sessions",
    )
    member_wxid = models.CharField(_("group member"), max_length=128, blank=True)
    ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("AI app"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    provider_conversation_id = models.CharField(
        _("provider conversation id"), max_length=250, blank=True
    )
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.ACTIVE)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    turns = models.PositiveIntegerField(_("turns"), default=0)

    class Meta:
        verbose_name = _("AI session")
        verbose_name_plural = _("AI sessions")
        ordering = ["-last_activity_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "member_wxid", "ai_app"],
                name="aisession_conversation_member_app",
            )
        ]
        indexes = [models.Index(fields=["state", "last_activity_at"], name="aisession_due")]

    def __str__(self) -> str:
        return str(_("AI session (%(state)s)") % {"state": self.get_state_display()})


class Draft(OrgScopedModel):
    """An AI answer written for an agent instead of being sent (reply mode ``draft``).

    The assignee (everyone when unassigned) sends it as is, edits and sends it, or discards it;
    it expires after the organisation's draft expiry. ``status`` leaves ``pending`` once, under
    a row lock, so a draft is never sent twice; the outcome stays for reports.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent as written")
        EDITED = "edited", _("Edited and sent")
        DISCARDED = "discarded", _("Discarded")
        EXPIRED = "expired", _("Expired")

    conversation = models.ForeignKey(
        Conversation,
        verbose_name=_("conversation"),
        on_delete=models.CASCADE,
        related_name="drafts",
    )
    turn = models.OneToOneField(
        AITurn,
        verbose_name=_("AI turn"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="draft",
    )
    reply_to = models.ForeignKey(
        Message,
        verbose_name=_("answers message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("AI app"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    text = models.TextField(_("draft text"))
    sent_text = models.TextField(_("sent text"), blank=True)
    # Groups: the member the answer @-mentions.
    mention_wxid = models.CharField(_("mentions"), max_length=128, blank=True)
    mention_name = models.CharField(_("mention name"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    expires_at = models.DateTimeField(_("expires at"))
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("AI draft")
        verbose_name_plural = _("AI drafts")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["org", "conversation", "status"], name="draft_org_conv_status"),
            models.Index(fields=["status", "expires_at"], name="draft_due"),
            models.Index(fields=["org", "status", "decided_at"], name="draft_org_outcome"),
        ]

    def __str__(self) -> str:
        return str(_("AI draft (%(status)s)") % {"status": self.get_status_display()})


class Label(OrgScopedModel):
    """A label agents put on conversations (inbox filter)."""

    name = models.CharField(_("name"), max_length=60)
    color = models.CharField(_("colour"), max_length=7, default="#8c8c8c")

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="conversation_label_org_name")
        ]

    def __str__(self) -> str:
        return self.name


class CannedReply(OrgScopedModel):
    """A saved answer agents insert; ``{nickname}``, ``{remark}``, ``{account_name}`` and
    ``{agent_name}`` are filled in per conversation."""

    title = models.CharField(_("title"), max_length=120)
    shortcut = models.CharField(_("shortcut"), max_length=32, blank=True)
    text = models.TextField(_("text"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["title", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "title"], name="canned_reply_org_title"),
        ]

    def __str__(self) -> str:
        return self.title


class ConversationNote(OrgScopedModel):
    """A private note of the team on a conversation: shown in the workspace thread, never sent
    to WeChat and never part of the AI's context."""

    conversation = models.ForeignKey(
        Conversation,
        verbose_name=_("conversation"),
        on_delete=models.CASCADE,
        related_name="notes",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("author"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    text = models.TextField(_("text"), max_length=10000)

    class Meta:
        verbose_name = _("private note")
        verbose_name_plural = _("private notes")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["org", "conversation", "created_at"])]

    def __str__(self) -> str:
        return self.text[:40]


class AnalysisBackfill(OrgScopedModel):
    """One request to analyse (intent, sentiment) an organisation's earlier customer messages
    over a range of days, made in the console and run by a worker with its progress kept here
    (apps/conversations/backfill.py). Re-running is safe: messages with a result are skipped
    unless ``redo``, and each call is billed once (its request id names the message)."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    class Mode(models.TextChoices):
        ORG = "", _("The organisation's analysis setting")
        INTENT = "intent", _("Intent only")
        INTENT_SENTIMENT = "intent_sentiment", _("Intent and sentiment")

    first_day = models.DateField(_("first day"))
    last_day = models.DateField(_("last day"))
    mode = models.CharField(_("analysis"), max_length=32, choices=Mode.choices, blank=True)
    redo = models.BooleanField(
        _("analyse again"),
        default=False,
        help_text=_("Also messages that already have a result (billed again)."),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.QUEUED, db_index=True
    )
    total = models.PositiveIntegerField(_("messages to analyse"), default=0)
    done = models.PositiveIntegerField(_("messages handled"), default=0)
    analysed = models.PositiveIntegerField(_("analysed"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    error = models.CharField(_("error"), max_length=300, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last progress at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("analysis backfill")
        verbose_name_plural = _("analysis backfills")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.first_day:%Y-%m-%d} – {self.last_day:%Y-%m-%d}"
