"""WeChat accounts (devices), their status history, contacts, groups, tags, friend requests and
Moments.

A ``WeChatAccount`` is one salesperson's personal WeChat logged in through a
``PlatformConnection`` (GeWe or E云管家). Its ``status`` only moves along
``WeChatAccount.TRANSITIONS`` (see ``services.account_status_change``); every move writes an
``AccountStatusEvent``. Outbound messages live in ``conversations.Message`` (one model, one send
path: ``services.send``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.core.models import OrgScopedModel


class ReplyPolicy(models.TextChoices):
    OFF = "off", _("Off")
    MENTION = "mention", _("When @-mentioned")
    KEYWORDS = "keywords", _("On keywords")
    ALL = "all", _("Every message")


class ReplyMode(models.TextChoices):
    """What the AI does with a customer message it may answer: send the answer (auto), write a
    draft an agent sends, edits or discards (draft, copilot), or nothing (off)."""

    AUTO = "auto", _("Answer automatically")
    DRAFT = "draft", _("Draft for an agent")
    OFF = "off", _("Off")


class WeChatAccount(OrgScopedModel):
    """One WeChat account logged in as a "device" at a platform connection.

    ``device_id`` is the platform's handle: GeWe ``appId`` (stable; a re-login must reuse it or
    WeChat's risk control triggers) or E云管家 ``wId`` (new on every login). ``wxid`` is the
    account's permanent WeChat id, known after the first login.
    """

    class Status(models.TextChoices):
        PENDING_LOGIN = "pending_login", _("Waiting for login")
        ONLINE = "online", _("Online")
        OFFLINE = "offline", _("Offline")
        RISK_CONTROLLED = "risk_controlled", _("Risk controlled")
        BANNED = "banned", _("Banned")
        LOGGED_OUT = "logged_out", _("Logged out")

    # The only legal moves of the state machine (from -> allowed targets).
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.PENDING_LOGIN: frozenset({Status.ONLINE, Status.LOGGED_OUT}),
        Status.ONLINE: frozenset(
            {Status.OFFLINE, Status.RISK_CONTROLLED, Status.BANNED, Status.LOGGED_OUT}
        ),
        Status.OFFLINE: frozenset(
            {
                Status.ONLINE,
                Status.PENDING_LOGIN,
                Status.RISK_CONTROLLED,
                Status.BANNED,
                Status.LOGGED_OUT,
            }
        ),
        Status.RISK_CONTROLLED: frozenset(
            {Status.ONLINE, Status.OFFLINE, Status.PENDING_LOGIN, Status.BANNED, Status.LOGGED_OUT}
        ),
        Status.BANNED: frozenset({Status.LOGGED_OUT}),
        Status.LOGGED_OUT: frozenset({Status.PENDING_LOGIN}),
    }
    # Moving into one of these notifies the owner and the managers.
    ALERT_STATUSES = frozenset({Status.OFFLINE, Status.RISK_CONTROLLED, Status.BANNED})

    class SyncState(models.TextChoices):
        IDLE = "idle", _("Idle")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    connection = models.ForeignKey(
        "integrations.PlatformConnection",
        verbose_name=_("connection"),
        on_delete=models.PROTECT,
        related_name="wechat_accounts",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    name = models.CharField(_("display name"), max_length=120)
    wxid = models.CharField(_("wxid"), max_length=64, blank=True, db_index=True)
    nickname = models.CharField(_("nickname"), max_length=200, blank=True)
    # Platform data, stored as text: a URL Django's validator refuses must never block a login.
    avatar_url = models.CharField(_("avatar"), max_length=1000, blank=True)
    device_id = models.CharField(
        _("platform device id"),
        max_length=128,
        blank=True,
        help_text=_("GeWe appId or E云管家 wId (the latter changes on every login)."),
    )
    login_uuid = models.CharField(_("login QR uuid"), max_length=128, blank=True)
    login_qr_image = models.TextField(_("login QR image"), blank=True)
    login_expires_at = models.DateTimeField(_("login QR expires at"), null=True, blank=True)
    login_started_at = models.DateTimeField(_("login started at"), null=True, blank=True)
    login_state = models.CharField(_("login state"), max_length=16, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING_LOGIN
    )
    status_reason = models.CharField(_("status reason"), max_length=300, blank=True)
    status_changed_at = models.DateTimeField(_("status changed at"), null=True, blank=True)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    logged_in_at = models.DateTimeField(_("logged in at"), null=True, blank=True)

    send_limit_per_minute = models.PositiveIntegerField(
        _("sends per minute"), default=40, validators=[MinValueValidator(1)]
    )
    send_limit_per_day = models.PositiveIntegerField(
        _("sends per day"), default=1000, validators=[MinValueValidator(1)]
    )
    quiet_hours_start = models.TimeField(
        _("quiet hours start"),
        null=True,
        blank=True,
        help_text=_("In the organisation's time zone; non-urgent sends wait until the end."),
    )
    quiet_hours_end = models.TimeField(_("quiet hours end"), null=True, blank=True)
    delay_min_seconds = models.FloatField(
        _("minimum delay (s)"),
        default=1.0,
        validators=[MinValueValidator(0), MaxValueValidator(600)],
    )
    delay_max_seconds = models.FloatField(
        _("maximum delay (s)"),
        default=3.0,
        validators=[MinValueValidator(0), MaxValueValidator(600)],
    )

    default_ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("default AI app"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    private_reply_policy = models.CharField(
        _("reply policy (private chats)"),
        max_length=16,
        choices=ReplyPolicy.choices,
        default=ReplyPolicy.ALL,
    )
    group_reply_policy = models.CharField(
        _("reply policy (groups)"),
        max_length=16,
        choices=ReplyPolicy.choices,
        default=ReplyPolicy.MENTION,
    )
    reply_keywords = models.JSONField(_("reply keywords"), default=list, blank=True)
    reply_mode = models.CharField(
        _("AI reply mode"),
        max_length=8,
        choices=ReplyMode.choices,
        default=ReplyMode.AUTO,
        help_text=_("A conversation can override it."),
    )
    auto_accept_friends = models.BooleanField(
        _("accept friend requests automatically"), default=False
    )
    welcome_message = models.TextField(_("welcome message"), blank=True)

    contacts_sync_state = models.CharField(
        _("contact sync"), max_length=16, choices=SyncState.choices, default=SyncState.IDLE
    )
    contacts_sync_done = models.PositiveIntegerField(_("contacts synced"), default=0)
    contacts_sync_total = models.PositiveIntegerField(_("contacts to sync"), default=0)
    contacts_sync_error = models.CharField(_("contact sync error"), max_length=300, blank=True)
    contacts_synced_at = models.DateTimeField(_("contacts synced at"), null=True, blank=True)
    moments_fetched_at = models.DateTimeField(_("timeline fetched at"), null=True, blank=True)

    class Meta:
        verbose_name = _("WeChat account")
        verbose_name_plural = _("WeChat accounts")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="wechat_account_org_name"),
            models.UniqueConstraint(
                fields=["connection", "device_id"],
                condition=~Q(device_id=""),
                name="wechat_account_connection_device",
            ),
            models.UniqueConstraint(
                fields=["connection", "wxid"],
                condition=~Q(wxid=""),
                name="wechat_account_connection_wxid",
            ),
        ]
        indexes = [models.Index(fields=["org", "status"], name="wechat_account_org_status")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.delay_min_seconds is not None and self.delay_max_seconds is not None:
            if self.delay_min_seconds > self.delay_max_seconds:
                raise ValidationError(
                    {"delay_max_seconds": _("The maximum delay must not be below the minimum.")}
                )
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            raise ValidationError(
                {"quiet_hours_end": _("Give both the start and the end of the quiet hours.")}
            )
        if not isinstance(self.reply_keywords, list) or not all(
            isinstance(k, str) for k in self.reply_keywords
        ):
            raise ValidationError({"reply_keywords": _("Keywords must be a list of strings.")})
        if self.connection_id and self.org_id and self.connection.org_id != self.org_id:
            raise ValidationError({"connection": _("Unknown connection.")})

    @classmethod
    def can_transition(cls, from_status: str, to_status: str) -> bool:
        return to_status in cls.TRANSITIONS.get(from_status, frozenset())


class AccountAIApp(OrgScopedModel):
    """One entry of an account's ordered AI app list: the AI turn tries the apps by
    ``position`` and moves to the next when one fails (failover)."""

    account = models.ForeignKey(
        WeChatAccount,
        verbose_name=_("account"),
        on_delete=models.CASCADE,
        related_name="ai_app_entries",
    )
    ai_app = models.ForeignKey(
        "integrations.AIApp",
        verbose_name=_("AI app"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("AI app of the account")
        verbose_name_plural = _("AI apps of the account (in failover order)")
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "ai_app"], name="wechat_account_ai_app_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}: {self.ai_app}"

    def clean(self) -> None:
        super().clean()
        if self.ai_app_id and self.org_id and self.ai_app.org_id != self.org_id:
            raise ValidationError({"ai_app": _("Unknown AI app.")})


class AccountStatusEvent(OrgScopedModel):
    """One move of an account's status (the state machine's audit trail)."""

    account = models.ForeignKey(
        WeChatAccount,
        verbose_name=_("account"),
        on_delete=models.CASCADE,
        related_name="status_events",
    )
    from_status = models.CharField(_("from"), max_length=20, choices=WeChatAccount.Status.choices)
    to_status = models.CharField(_("to"), max_length=20, choices=WeChatAccount.Status.choices)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("account status event")
        verbose_name_plural = _("account status events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["org", "account", "at"], name="wechat_status_evt_acct")]

    def __str__(self) -> str:
        return f"{self.get_from_status_display()} → {self.get_to_status_display()}"


class Tag(OrgScopedModel):
    """A customer tag. ``platform_label_ids`` maps account id (str) to the platform's label id
    for accounts whose platform has labels (GeWe ``/label/*``, E云管家 contact labels)."""

    name = models.CharField(_("name"), max_length=60)
    color = models.CharField(
        _("colour"), max_length=7, default="#1677ff", help_text=_("Hex, e.g. #1677ff.")
    )
    platform_label_ids = models.JSONField(_("platform label ids"), default=dict, blank=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="wechat_tag_org_name")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        import re

        if not re.fullmatch(r"#[0-9a-fA-F]{6}", self.color or ""):
            raise ValidationError({"color": _("Use a hex colour such as #1677ff.")})


class Contact(OrgScopedModel):
    """A friend, group, official account or stranger as seen by one WeChat account."""

    class Kind(models.TextChoices):
        FRIEND = "friend", _("Friend")
        GROUP = "group", _("Group")
        OFFICIAL = "official", _("Official account")
        STRANGER = "stranger", _("Stranger")

    account = models.ForeignKey(
        WeChatAccount, verbose_name=_("account"), on_delete=models.CASCADE, related_name="contacts"
    )
    wxid = models.CharField(_("wxid"), max_length=128)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.FRIEND)
    nickname = models.CharField(_("nickname"), max_length=200, blank=True)
    remark = models.CharField(_("remark"), max_length=200, blank=True)
    alias = models.CharField(_("WeChat id"), max_length=128, blank=True)
    avatar_url = models.CharField(_("avatar"), max_length=1000, blank=True)
    sex = models.PositiveSmallIntegerField(_("sex"), null=True, blank=True)
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="contacts")
    added_at = models.DateTimeField(_("added at"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=32, blank=True)
    attributes = models.JSONField(_("custom attributes"), default=dict, blank=True)
    is_blocked = models.BooleanField(_("blocked"), default=False)
    removed_at = models.DateTimeField(_("removed at"), null=True, blank=True)
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)
    # Groups only: overrides the account's group reply policy (empty: the account's).
    reply_policy = models.CharField(
        _("reply policy"),
        max_length=16,
        choices=ReplyPolicy.choices,
        blank=True,
        help_text=_("Groups: when the AI answers here. Empty uses the account's group policy."),
    )

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "wxid"], name="wechat_contact_account_wxid")
        ]
        indexes = [
            models.Index(fields=["org", "account", "kind"], name="wechat_contact_org_acct_kind"),
            models.Index(fields=["org", "wxid"], name="wechat_contact_org_wxid"),
        ]

    def __str__(self) -> str:
        return self.remark or self.nickname or self.wxid

    @property
    def display_name(self) -> str:
        return self.remark or self.nickname or self.wxid

    @staticmethod
    def kind_for_wxid(wxid: str) -> str:
        if wxid.endswith("@chatroom"):
            return Contact.Kind.GROUP
        if wxid.startswith("gh_"):
            return Contact.Kind.OFFICIAL
        return Contact.Kind.FRIEND


class GroupMember(OrgScopedModel):
    """A member of a group chat (``group`` is a Contact of kind group)."""

    group = models.ForeignKey(
        Contact, verbose_name=_("group"), on_delete=models.CASCADE, related_name="members"
    )
    member_wxid = models.CharField(_("member wxid"), max_length=128)
    nickname = models.CharField(_("nickname"), max_length=200, blank=True)
    display_name = models.CharField(_("display name in group"), max_length=200, blank=True)
    inviter_wxid = models.CharField(_("invited by"), max_length=128, blank=True)
    is_admin = models.BooleanField(_("admin"), default=False)
    is_owner = models.BooleanField(_("owner"), default=False)

    class Meta:
        verbose_name = _("group member")
        verbose_name_plural = _("group members")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "member_wxid"], name="wechat_groupmember_group_wxid"
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.nickname or self.member_wxid


class FriendRequest(OrgScopedModel):
    """An incoming friend request (GeWe MsgType 37 / E云管家 30001), accepted by hand or
    automatically; ``v3``/``v4`` (E云: ``v1``/``v2``) are the platform's tickets."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    account = models.ForeignKey(
        WeChatAccount,
        verbose_name=_("account"),
        on_delete=models.CASCADE,
        related_name="friend_requests",
    )
    from_wxid = models.CharField(_("from wxid"), max_length=128, blank=True)
    nickname = models.CharField(_("nickname"), max_length=200, blank=True)
    content = models.CharField(_("greeting"), max_length=500, blank=True)
    v3 = models.CharField(_("v3 / v1 ticket"), max_length=300)
    v4 = models.CharField(_("v4 / v2 ticket"), max_length=300, blank=True)
    scene = models.PositiveIntegerField(_("scene"), default=0)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    error = models.CharField(_("error"), max_length=300, blank=True)
    handled_at = models.DateTimeField(_("handled at"), null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("handled by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("friend request")
        verbose_name_plural = _("friend requests")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "v3"], name="wechat_friendreq_account_v3")
        ]

    def __str__(self) -> str:
        return self.nickname or self.from_wxid or self.v3


class MomentPost(OrgScopedModel):
    """A Moments post by one account, now or at ``scheduled_at`` (goes through the account's
    send limits like any other outbound operation)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        POSTING = "posting", _("Posting")
        POSTED = "posted", _("Posted")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    class Visibility(models.TextChoices):
        PUBLIC = "public", _("All friends")
        PRIVATE = "private", _("Only me")
        TAGS = "tags", _("Only these tags")

    account = models.ForeignKey(
        WeChatAccount, verbose_name=_("account"), on_delete=models.CASCADE, related_name="moments"
    )
    text = models.TextField(_("text"), blank=True)
    images = models.JSONField(_("image URLs"), default=list, blank=True)
    link = models.JSONField(_("link"), default=dict, blank=True)
    visibility = models.CharField(
        _("visibility"), max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    visible_tags = models.ManyToManyField(
        Tag, verbose_name=_("visible to tags"), blank=True, related_name="+"
    )
    scheduled_at = models.DateTimeField(_("scheduled at"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.SCHEDULED
    )
    platform_id = models.CharField(_("platform id"), max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    posted_at = models.DateTimeField(_("posted at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("moment post")
        verbose_name_plural = _("moment posts")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "scheduled_at"], name="wechat_moment_due"),
            models.Index(fields=["org", "account", "created_at"], name="wechat_moment_org_acct"),
        ]

    def __str__(self) -> str:
        return (self.text or self.link.get("title", "") or str(self.pk))[:50]

    def clean(self) -> None:
        super().clean()
        if not (self.text or self.images or self.link):
            raise ValidationError(_("A post needs text, images or a link."))
        if not isinstance(self.images, list) or len(self.images) > 9:
            raise ValidationError({"images": _("At most 9 image URLs.")})
        if self.link and not (isinstance(self.link, dict) and self.link.get("url")):
            raise ValidationError({"link": _("A link needs a url.")})


class MomentTimelineItem(OrgScopedModel):
    """The cached Moments timeline of an account (refreshed at most every
    ``WECHAT_MOMENTS_TIMELINE_TTL`` seconds)."""

    account = models.ForeignKey(
        WeChatAccount,
        verbose_name=_("account"),
        on_delete=models.CASCADE,
        related_name="timeline",
    )
    moment_id = models.CharField(_("moment id"), max_length=64)
    author_wxid = models.CharField(_("author"), max_length=128, blank=True)
    author_nickname = models.CharField(_("author nickname"), max_length=200, blank=True)
    posted_at = models.DateTimeField(_("posted at"), null=True, blank=True)
    raw = models.JSONField(_("raw"), default=dict, blank=True)

    class Meta:
        verbose_name = _("timeline item")
        verbose_name_plural = _("timeline items")
        ordering = ["-posted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "moment_id"], name="wechat_timeline_account_moment"
            )
        ]

    def __str__(self) -> str:
        return self.moment_id
