"""Typed organisation settings: one declaration per key, one reader, one form.

``Organization.settings`` is a JSON object. Every key a feature reads is declared here with its
type, default, translatable label, help text and validation; code reads a value only through
``org_setting(org, key)``, which returns the stored value when it is valid and the declared default
otherwise (a hand-edited or outdated JSON value never crashes a caller). The console's
"organisation settings" page is the form ``OrgSettingsForm`` built from these declarations, and
writes go through ``apps.orgs.services.organization_settings_update``.

Add a key (from any app) with a small declaration in ``DECLARATIONS`` below, or at import time of
your app with ``declare(OrgSetting(...))``:

    declare(OrgSetting(key="my_limit", kind=Kind.INT, default=10, label=_("My limit"),
                       help_text=_("..."), min_value=1, max_value=100, section=Section.AI))

Dotted keys (``notifications.sms_numbers``) address nested objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

HANDOFF_ACK_DEFAULT = "已为您转接人工客服，请稍候"


class Kind(StrEnum):
    BOOL = "bool"
    INT = "int"
    STRING = "string"  # one line
    TEXT = "text"  # several lines
    CHOICE = "choice"
    STRING_LIST = "string_list"  # tag input
    TIME_RANGE = "time_range"  # {"start": "HH:MM", "end": "HH:MM"} or None (off)
    ID_LIST = "id_list"  # ids of rows picked with a search widget (e.g. contacts)


class Section(StrEnum):
    """Fieldsets of the settings form, in this order."""

    HANDOFF = "handoff"
    AI = "ai"
    CONVERSATIONS = "conversations"
    SENDING = "sending"
    NOTIFICATIONS = "notifications"


SECTION_LABELS = {
    Section.HANDOFF: _("Handoff to a person"),
    Section.AI: _("AI analysis"),
    Section.CONVERSATIONS: _("Conversation handling"),
    Section.SENDING: _("Sending limits"),
    Section.NOTIFICATIONS: _("Notifications"),
}


@dataclass(frozen=True)
class OrgSetting:
    """One organisation setting. ``default`` may be a callable (read at call time, e.g. from
    Django settings); ``validators`` get the already-typed value and raise ValidationError."""

    key: str
    kind: Kind
    default: Any
    label: Any
    help_text: Any = ""
    section: Section = Section.CONVERSATIONS
    choices: tuple[tuple[str, Any], ...] = ()
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None
    max_items: int | None = None
    validators: tuple[Callable[[Any], None], ...] = field(default_factory=tuple)
    # Import path of the model whose ids an ID_LIST holds ("wechat_accounts.Contact").
    model: str = ""

    def get_default(self) -> Any:
        value = self.default() if callable(self.default) else self.default
        return list(value) if isinstance(value, list) else value

    def coerce(self, value: Any) -> Any:
        """The typed value, or ValidationError. ``None`` is allowed where the default is None."""
        if value is None:
            if self.get_default() is None:
                return None
            raise ValidationError(_("A value is required."))
        kind = self.kind
        if kind is Kind.BOOL:
            if not isinstance(value, bool):
                raise ValidationError(_("Expected true or false."))
        elif kind is Kind.INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(_("Expected a whole number."))
            if self.min_value is not None and value < self.min_value:
                raise ValidationError(
                    _("At least %(min)s."), params={"min": self.min_value}, code="min_value"
                )
            if self.max_value is not None and value > self.max_value:
                raise ValidationError(
                    _("At most %(max)s."), params={"max": self.max_value}, code="max_value"
                )
        elif kind in (Kind.STRING, Kind.TEXT, Kind.CHOICE):
            if not isinstance(value, str):
                raise ValidationError(_("Expected text."))
            if self.max_length is not None and len(value) > self.max_length:
                raise ValidationError(
                    _("At most %(max)s characters."), params={"max": self.max_length}
                )
            if kind is Kind.CHOICE and value not in {c for c, _label in self.choices}:
                raise ValidationError(
                    _("Not one of the choices: %(value)s"), params={"value": value}
                )
        elif kind is Kind.STRING_LIST:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(_("Expected a list of texts."))
            value = _dedupe([v.strip() for v in value if v.strip()])
            if self.max_items is not None and len(value) > self.max_items:
                raise ValidationError(_("At most %(max)s entries."), params={"max": self.max_items})
            if self.max_length is not None and any(len(v) > self.max_length for v in value):
                raise ValidationError(
                    _("Each entry has at most %(max)s characters."), params={"max": self.max_length}
                )
        elif kind is Kind.ID_LIST:
            if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise ValidationError(_("Expected a list of ids."))
            value = _dedupe(value)
        elif kind is Kind.TIME_RANGE:
            if not isinstance(value, dict):
                raise ValidationError(_("Expected a start and an end time."))
            start, end = _parse_time(value.get("start")), _parse_time(value.get("end"))
            if start is None or end is None:
                raise ValidationError(_("Give both times as HH:MM."))
            if start == end:
                raise ValidationError(_("The start and the end must differ."))
            value = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
        for validator in self.validators:
            validator(value)
        return value


def _dedupe(values: list) -> list:
    seen, out = set(), []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _parse_time(value: Any) -> time | None:
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = (int(p) for p in value.strip().split(":"))
        if 0 <= hours < 24 and 0 <= minutes < 60:
            return time(hours, minutes)
    return None


def validate_e164(value: list[str]) -> None:
    for number in value:
        if not re.fullmatch(r"\+[1-9]\d{6,14}", number):
            raise ValidationError(
                _("%(number)s is not a phone number in the form +8613800000000."),
                params={"number": number},
            )


REGISTRY: dict[str, OrgSetting] = {}


def declare(setting: OrgSetting) -> OrgSetting:
    """Add a setting (unique key). Returns it, so a module may keep a reference."""
    if setting.key in REGISTRY:
        raise ValueError(f"organisation setting {setting.key!r} is declared twice")
    REGISTRY[setting.key] = setting
    return setting


REPLY_POLICY_CHOICES = (
    ("off", _("Off")),
    ("mention", _("When @-mentioned")),
    ("keywords", _("On keywords")),
    ("all", _("Every message")),
)

DECLARATIONS = [
    # -- handoff ------------------------------------------------------------------------------
    OrgSetting(
        key="handoff_keywords",
        kind=Kind.STRING_LIST,
        default=list,
        label=_("Handoff keywords"),
        help_text=_(
            "A customer message containing one of these words goes to a person at once, in "
            "addition to the built-in ones (转人工, 人工客服 …)."
        ),
        section=Section.HANDOFF,
        max_items=100,
        max_length=30,
    ),
    OrgSetting(
        key="handoff_ack_enabled",
        kind=Kind.BOOL,
        default=False,
        label=_("Tell the customer when a person takes over"),
        help_text=_("Send the acknowledgement below to the customer after a handoff."),
        section=Section.HANDOFF,
    ),
    OrgSetting(
        key="handoff_ack_text",
        kind=Kind.TEXT,
        default=HANDOFF_ACK_DEFAULT,
        label=_("Handoff acknowledgement"),
        help_text=_("The message the customer receives when a person takes over."),
        section=Section.HANDOFF,
        max_length=500,
    ),
    OrgSetting(
        key="ai_auto_return_minutes",
        kind=Kind.INT,
        default=0,
        label=_("Return to the AI after (minutes)"),
        help_text=_(
            "A conversation a person took over goes back to the AI after this many minutes "
            "without a reply from the person. 0: never (off)."
        ),
        section=Section.HANDOFF,
        min_value=0,
        max_value=7 * 24 * 60,
    ),
    # -- AI -----------------------------------------------------------------------------------
    OrgSetting(
        key="ai_analysis_mode",
        kind=Kind.CHOICE,
        default=lambda: "intent_sentiment" if settings.CONVERSATION_AI_ANALYSIS_ENABLED else "off",
        label=_("Intent and sentiment analysis"),
        help_text=_(
            "Analyse every customer message (one extra AI call each). A strongly negative "
            "customer is handed to a person."
        ),
        section=Section.AI,
        choices=(
            ("off", _("Off")),
            ("intent", _("Intent only")),
            ("intent_sentiment", _("Intent and sentiment")),
        ),
    ),
    # ai (issue 17): read through apps.conversations.ai_settings.
    OrgSetting(
        key="ai_negative_handoff_threshold",
        kind=Kind.INT,
        default=lambda: round(-settings.CONVERSATION_HANDOFF_SENTIMENT_SCORE * 100),
        label=_("Negative sentiment that hands off (%)"),
        help_text=_(
            "With intent and sentiment analysis, a customer whose sentiment score is at or "
            "below minus this percentage goes to a person (70: -0.70). 0: never."
        ),
        section=Section.AI,
        min_value=0,
        max_value=100,
    ),
    OrgSetting(
        key="ai_draft_expiry_minutes",
        kind=Kind.INT,
        default=lambda: settings.CONVERSATION_DRAFT_EXPIRY_MINUTES,
        label=_("AI drafts expire after (minutes)"),
        help_text=_("In draft (copilot) mode, a draft nobody sent is withdrawn after this long."),
        section=Section.AI,
        min_value=1,
        max_value=7 * 24 * 60,
    ),
    OrgSetting(
        key="ai_auto_resolve_idle_days",
        kind=Kind.INT,
        default=lambda: settings.CONVERSATION_AUTO_RESOLVE_IDLE_DAYS,
        label=_("Resolve idle conversations after (days)"),
        help_text=_(
            "Open conversations without any message for this many days are resolved, with a "
            "note in the thread. 0: never."
        ),
        section=Section.AI,
        min_value=0,
        max_value=365,
    ),
    OrgSetting(
        key="ai_session_idle_minutes",
        kind=Kind.INT,
        default=lambda: settings.CONVERSATION_AI_SESSION_IDLE_SECONDS // 60,
        label=_("AI session idle after (minutes)"),
        help_text=_("The AI provider's session of a chat counts as idle after this long."),
        section=Section.AI,
        min_value=1,
        max_value=7 * 24 * 60,
    ),
    OrgSetting(
        key="ai_session_expire_minutes",
        kind=Kind.INT,
        default=lambda: settings.CONVERSATION_AI_SESSION_EXPIRE_SECONDS // 60,
        label=_("New AI session after (minutes)"),
        help_text=_(
            "After this long without AI activity a private chat starts a new session at the "
            "AI provider (FastGPT, Dify): the AI forgets the old context."
        ),
        section=Section.AI,
        min_value=1,
        max_value=30 * 24 * 60,
    ),
    OrgSetting(
        key="ai_group_session_idle_minutes",
        kind=Kind.INT,
        default=lambda: settings.CONVERSATION_GROUP_SESSION_IDLE_SECONDS // 60,
        label=_("New AI session per group member after (minutes)"),
        help_text=_(
            "In groups the AI keeps one session per member; it starts a new one after this "
            "long without activity (default one hour)."
        ),
        section=Section.AI,
        min_value=1,
        max_value=7 * 24 * 60,
    ),
    # -- conversations ------------------------------------------------------------------------
    OrgSetting(
        key="conversation_visibility",
        kind=Kind.CHOICE,
        default="all",
        label=_("Conversations an agent sees"),
        help_text=_("Managers and admins always see every conversation."),
        section=Section.CONVERSATIONS,
        choices=(
            ("all", _("All conversations of the organisation")),
            ("assigned", _("Their own and unassigned conversations")),
        ),
    ),
    OrgSetting(
        key="default_private_reply_policy",
        kind=Kind.CHOICE,
        default="all",
        label=_("Default AI reply policy (private chats)"),
        help_text=_("Used for newly connected WeChat accounts; each account can change it."),
        section=Section.CONVERSATIONS,
        choices=(("off", _("Off")), ("keywords", _("On keywords")), ("all", _("Every message"))),
    ),
    OrgSetting(
        key="default_group_reply_policy",
        kind=Kind.CHOICE,
        default="mention",
        label=_("Default AI reply policy (groups)"),
        help_text=_("Used for newly connected WeChat accounts; each account can change it."),
        section=Section.CONVERSATIONS,
        choices=REPLY_POLICY_CHOICES,
    ),
    # -- sending ------------------------------------------------------------------------------
    OrgSetting(
        key="quiet_hours",
        kind=Kind.TIME_RANGE,
        default=None,
        label=_("Quiet hours"),
        help_text=_(
            "No automated messages (campaigns) are sent between these times, in the "
            "organisation's time zone; they wait until the end. Empty: no quiet hours."
        ),
        section=Section.SENDING,
    ),
    OrgSetting(
        key="wechat_send_limit_per_minute",
        kind=Kind.INT,
        default=lambda: settings.WECHAT_SEND_ORG_LIMIT_PER_MINUTE,
        label=_("Messages per minute (all accounts)"),
        help_text=_("At most this many WeChat messages per minute for the whole organisation."),
        section=Section.SENDING,
        min_value=1,
        max_value=10_000,
    ),
    # -- notifications ------------------------------------------------------------------------
    OrgSetting(
        key="notifications.sms_numbers",
        kind=Kind.STRING_LIST,
        default=list,
        label=_("SMS numbers for urgent alerts"),
        help_text=_("Phone numbers in international form, e.g. +8613800000000."),
        section=Section.NOTIFICATIONS,
        max_items=20,
        validators=(validate_e164,),
    ),
]

for _declaration in DECLARATIONS:
    declare(_declaration)


# -- reading ------------------------------------------------------------------------------------


def _raw(data: dict, key: str) -> tuple[bool, Any]:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _legacy(data: dict, key: str) -> tuple[bool, Any]:
    """Older stored forms of a key, read until the form saves the key again."""
    if key == "ai_analysis_mode":
        found, value = _raw(data, key)
        if found and value in ("record", "handoff"):  # the first choices of this key
            return True, "intent_sentiment"
        found, value = _raw(data, "ai_analysis")  # a bool before the mode existed
        if found and isinstance(value, bool):
            return True, "intent_sentiment" if value else "off"
    return False, None


def org_setting(org, key: str) -> Any:
    """The organisation's value of ``key``: the stored value if valid, else the default."""
    declaration = REGISTRY[key]  # an undeclared key is a programming error
    data = getattr(org, "settings", None)
    data = data if isinstance(data, dict) else {}
    for read in (_raw, _legacy):
        found, value = read(data, key)
        if found:
            try:
                return declaration.coerce(value)
            except ValidationError:
                continue
    return declaration.get_default()


def org_settings_all(org) -> dict[str, Any]:
    return {key: org_setting(org, key) for key in REGISTRY}


def settings_with(data: dict | None, values: dict[str, Any]) -> dict:
    """A copy of the settings JSON ``data`` with the typed ``values`` written at their keys
    (validated; unknown keys raise ValidationError). Keys not in ``values`` are kept as they are."""
    result = _deep_copy(data or {})
    errors = {}
    for key, value in values.items():
        declaration = REGISTRY.get(key)
        if declaration is None:
            errors[key] = ValidationError(_("Unknown setting."))
            continue
        try:
            value = declaration.coerce(value)
        except ValidationError as exc:
            errors[key] = exc
            continue
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    if errors:
        raise ValidationError(errors)
    return result


def _deep_copy(data: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


# -- the form -----------------------------------------------------------------------------------


class StringListField(forms.Field):
    """A list of texts, one per line or separated by commas (the tag input's fallback)."""

    def __init__(self, *args, **kwargs):
        from apps.core.widgets import TagInputWidget

        kwargs.setdefault("widget", TagInputWidget)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [part.strip() for part in re.split(r"[\n,，]+", value or "") if part.strip()]


class TimeRangeField(forms.MultiValueField):
    def __init__(self, **kwargs):
        fields = (forms.TimeField(required=False), forms.TimeField(required=False))
        from unfold.widgets import INPUT_CLASSES

        attrs = {"type": "time", "class": " ".join(INPUT_CLASSES) + " max-w-40"}
        widget = forms.MultiWidget(
            widgets=[
                forms.TimeInput(attrs=attrs, format="%H:%M"),
                forms.TimeInput(attrs=attrs, format="%H:%M"),
            ]
        )
        super().__init__(fields=fields, widget=widget, require_all_fields=False, **kwargs)

    def compress(self, data_list):
        if not data_list or not any(data_list):
            return None
        start, end = (list(data_list) + [None, None])[:2]
        if start is None or end is None:
            raise ValidationError(_("Give both the start and the end, or neither."))
        return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def _decompress_time_range(value):
    if isinstance(value, dict):
        return [_parse_time(value.get("start")), _parse_time(value.get("end"))]
    return [None, None]


def form_field(declaration: OrgSetting) -> forms.Field:
    from unfold import widgets as uw

    common = {
        "label": declaration.label,
        "help_text": declaration.help_text,
        "required": False,
    }
    kind = declaration.kind
    if kind is Kind.BOOL:
        return forms.BooleanField(widget=uw.UnfoldBooleanSwitchWidget, **common)
    if kind is Kind.INT:
        return forms.IntegerField(
            min_value=declaration.min_value,
            max_value=declaration.max_value,
            widget=uw.UnfoldAdminIntegerFieldWidget,
            **common,
        )
    if kind is Kind.STRING:
        return forms.CharField(
            max_length=declaration.max_length, widget=uw.UnfoldAdminTextInputWidget, **common
        )
    if kind is Kind.TEXT:
        return forms.CharField(
            max_length=declaration.max_length,
            widget=uw.UnfoldAdminTextareaWidget(attrs={"rows": 3}),
            **common,
        )
    if kind is Kind.CHOICE:
        return forms.ChoiceField(
            choices=declaration.choices,
            widget=uw.UnfoldAdminRadioSelectWidget,
            **{**common, "required": True},
        )
    if kind is Kind.STRING_LIST:
        return StringListField(**common)
    if kind is Kind.TIME_RANGE:
        field = TimeRangeField(**common)
        field.widget.decompress = _decompress_time_range
        return field
    if kind is Kind.ID_LIST:
        from apps.core.widgets import id_list_field

        return id_list_field(declaration, **common)
    raise ValueError(kind)


class OrgSettingsForm(forms.Form):
    """Every declared setting of one organisation, typed, with the current values."""

    def __init__(self, *args, org, **kwargs):
        self.org = org
        super().__init__(*args, **kwargs)
        for key, declaration in REGISTRY.items():
            self.fields[key] = form_field(declaration)
            if hasattr(self.fields[key], "set_org"):
                self.fields[key].set_org(org)
            self.initial.setdefault(key, org_setting(org, key))

    def clean(self):
        cleaned = super().clean()
        for key, declaration in REGISTRY.items():
            if key not in cleaned:
                continue
            value = cleaned[key]
            if declaration.kind is Kind.STRING_LIST and value is None:
                value = []
            if declaration.kind is Kind.INT and value is None:
                value = declaration.get_default()
            if declaration.kind in (Kind.STRING, Kind.TEXT) and value == "":
                value = declaration.get_default()  # blank text: back to the default
            try:
                cleaned[key] = declaration.coerce(value)
            except ValidationError as exc:
                self.add_error(key, exc)
        return cleaned

    def sections(self) -> list[tuple[Any, list]]:
        """(label, bound fields) per section, in declaration order."""
        grouped: dict[Section, list] = {}
        for key, declaration in REGISTRY.items():
            grouped.setdefault(declaration.section, []).append(self[key])
        return [(SECTION_LABELS[s], grouped[s]) for s in Section if s in grouped]
