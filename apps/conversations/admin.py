"""Admin of the conversations app: the inbox with the message thread inline and the same
actions as the API (through the services), labels, canned replies, AI turns, and the webhook
inbox of the integrations app (registered here because the core loop owns it)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from unfold.admin import TabularInline

from apps.conversations import services
from apps.conversations.models import AITurn, CannedReply, Conversation, Label, Message
from apps.conversations.services import HandoffReason
from apps.core.admin import EVERYONE, MANAGERS, OrgScopedAdmin
from apps.core.exceptions import ApplicationError
from apps.core.money import format_money
from apps.integrations.models import WebhookEvent
from apps.orgs.models import Membership

HANDOFF_REASON_LABELS = dict(HandoffReason.choices)
SENTIMENT_LABELS = {
    "positive": _("Positive"),
    "neutral": _("Neutral"),
    "negative": _("Negative"),
}


class HandoffReasonFilter(admin.SimpleListFilter):
    title = _("handoff reason")
    parameter_name = "handoff_reason"

    def lookups(self, request, model_admin):
        return list(HANDOFF_REASON_LABELS.items())

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(handoff_reason=value) if value else queryset


MESSAGE_FIELDS = (
    "created_at",
    "direction",
    "sender_kind",
    "sender_name",
    "kind",
    "text",
    "status",
    "platform_msg_id",
    "ai_cost_display",
    "intent",
    "sentiment_label",
)


class MessageInline(TabularInline):
    model = Message
    fields = MESSAGE_FIELDS
    readonly_fields = MESSAGE_FIELDS
    extra = 0
    can_delete = False
    ordering = ["-id"]
    max_num = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-id")

    @admin.display(description=_("AI cost"))
    def ai_cost_display(self, obj):
        return format_money(obj.ai_cost, "CNY", 4) if obj.ai_cost is not None else "—"

    @admin.display(description=_("sentiment"))
    def sentiment_label(self, obj):
        return SENTIMENT_LABELS.get(obj.sentiment, obj.sentiment or "—")


def _each(modeladmin, request, queryset, apply, done_message):
    count = 0
    for conversation in queryset:
        try:
            apply(conversation)
            count += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{conversation}: {exc}", messages.ERROR)
    modeladmin.message_user(request, done_message % {"count": count}, messages.SUCCESS)


@admin.action(description=_("Hand over to a person"))
def hand_to_human(modeladmin, request, queryset):
    _each(
        modeladmin,
        request,
        queryset,
        lambda c: services.conversation_handoff(
            org=c.org_id, conversation_id=c.pk, mode="human", user=request.user
        ),
        _("%(count)d conversation(s) handed to a person."),
    )


@admin.action(description=_("Hand back to the AI"))
def hand_to_ai(modeladmin, request, queryset):
    _each(
        modeladmin,
        request,
        queryset,
        lambda c: services.conversation_handoff(
            org=c.org_id, conversation_id=c.pk, mode="ai", user=request.user
        ),
        _("%(count)d conversation(s) handed back to the AI."),
    )


@admin.action(description=_("Resolve"))
def resolve(modeladmin, request, queryset):
    _each(
        modeladmin,
        request,
        queryset,
        lambda c: services.conversation_resolve(org=c.org, conversation_id=c.pk),
        _("%(count)d conversation(s) resolved."),
    )


@admin.action(description=_("Reopen"))
def reopen(modeladmin, request, queryset):
    _each(
        modeladmin,
        request,
        queryset,
        lambda c: services.conversation_reopen(org=c.org, conversation_id=c.pk),
        _("%(count)d conversation(s) reopened."),
    )


@admin.action(description=_("Mark as read"))
def mark_read(modeladmin, request, queryset):
    _each(
        modeladmin,
        request,
        queryset,
        lambda c: services.conversation_mark_read(
            org=c.org, conversation_id=c.pk, user=request.user
        ),
        _("%(count)d conversation(s) marked as read."),
    )


class ConversationAdminForm(forms.ModelForm):
    """A superuser's choices span every organisation: refuse another one's user or AI app as a
    form error instead of letting the service fail the save."""

    class Meta:
        model = Conversation
        fields = ("priority", "assignee", "labels", "ai_app")

    def clean_assignee(self):
        assignee = self.cleaned_data.get("assignee")
        org_id = self.instance.org_id
        if assignee and not Membership.objects.filter(org_id=org_id, user=assignee).exists():
            raise forms.ValidationError(
                _("The assignee is not a member of this conversation's organization.")
            )
        return assignee

    def clean_ai_app(self):
        ai_app = self.cleaned_data.get("ai_app")
        if ai_app and ai_app.org_id != self.instance.org_id:
            raise forms.ValidationError(_("The AI app belongs to another organization."))
        return ai_app


@admin.register(Conversation)
class ConversationAdmin(OrgScopedAdmin):
    edit_roles = MANAGERS
    form = ConversationAdminForm
    list_display = (
        "contact",
        "account",
        "status",
        "mode",
        "handoff_reason_label",
        "priority",
        "assignee",
        "unread_count",
        "last_message_at",
    )
    list_filter = ("status", "mode", "priority", HandoffReasonFilter, "account", "labels")
    search_fields = ("contact__nickname", "contact__remark", "contact__wxid", "messages__text")
    list_select_related = ("contact", "account", "assignee")
    readonly_fields = (
        "org",
        "account",
        "contact",
        "status",
        "mode",
        "unread_count",
        "last_message_at",
        "last_inbound_at",
        "ai_conversation_id",
        "ai_last_activity_at",
        "ai_answered_message_id",
        "ai_paused_until",
        "handoff_reason_label",
        "handed_off_at",
        "resolved_at",
        "snooze_until",
        "created_at",
        "updated_at",
    )
    fields = (
        *readonly_fields[:6],
        "priority",
        "assignee",
        "labels",
        "ai_app",
        *readonly_fields[6:],
    )
    filter_horizontal = ("labels",)

    @admin.display(description=_("handoff reason"), ordering="handoff_reason")
    def handoff_reason_label(self, obj):
        if not obj.handoff_reason:
            return "—"
        return HANDOFF_REASON_LABELS.get(obj.handoff_reason, obj.handoff_reason)

    inlines = [MessageInline]
    actions = [hand_to_human, hand_to_ai, resolve, reopen, mark_read]
    date_hierarchy = "last_message_at"

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return queryset.distinct() if search_term else queryset, False

    def save_model(self, request, obj, form, change):
        # Assignee / priority / AI app through the services (membership and org checks).
        if change:
            changed = set(form.changed_data)
            if "assignee" in changed:
                services.conversation_assign(
                    org=obj.org, conversation_id=obj.pk, assignee=obj.assignee
                )
            fields = {k: getattr(obj, k) for k in ("priority", "ai_app") if k in changed}
            if fields:
                services.conversation_update(org=obj.org, conversation_id=obj.pk, **fields)
            return
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if "labels" in form.changed_data:
            services.conversation_set_labels(
                org=form.instance.org,
                conversation_id=form.instance.pk,
                names=[label.name for label in form.cleaned_data["labels"]],
            )
        # The message inline is read-only: nothing else to save.

    def has_add_permission(self, request):
        return False


@admin.register(Message)
class MessageAdmin(OrgScopedAdmin):
    list_display = (
        "__str__",
        "conversation",
        "direction",
        "sender_kind",
        "kind",
        "status",
        "created_at",
    )
    # media: "Media fetch failed" (媒体获取失败) is a filter; the reason is media_error.
    list_filter = ("direction", "sender_kind", "kind", "status", "media_status")
    search_fields = ("text", "platform_msg_id", "sender_wxid")
    readonly_fields = [f.name for f in Message._meta.fields]
    list_select_related = ("conversation", "conversation__contact")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AITurn)
class AITurnAdmin(OrgScopedAdmin):
    list_display = (
        "__str__",
        "conversation",
        "status",
        "attempts",
        "cost_display",
        "latency_ms",
        "created_at",
    )
    list_select_related = ("conversation", "conversation__contact")

    @admin.display(description=_("cost"), ordering="cost")
    def cost_display(self, obj):
        return format_money(obj.cost, "CNY", 4)

    list_filter = ("status",)
    search_fields = ("question", "answer", "error")
    readonly_fields = [f.name for f in AITurn._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Label)
class LabelAdmin(OrgScopedAdmin):
    edit_roles = MANAGERS
    list_display = ("name", "color", "org")
    search_fields = ("name",)
    list_filter = ("org",)


@admin.register(CannedReply)
class CannedReplyAdmin(OrgScopedAdmin):
    view_roles = EVERYONE  # agents read them (and use them in the workspace)
    edit_roles = MANAGERS
    list_display = ("title", "shortcut", "org", "updated_at")
    search_fields = ("title", "shortcut", "text")
    list_filter = ("org",)
    readonly_fields = ("created_by",)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(WebhookEvent)
class WebhookEventAdmin(OrgScopedAdmin):
    superuser_only = True  # raw platform payloads: platform internals
    list_display = (
        "id",
        "provider",
        "event_type",
        "status",
        "attempts",
        "connection",
        "created_at",
    )
    list_filter = ("provider", "status", "event_type")
    search_fields = ("dedupe_key", "error")
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
