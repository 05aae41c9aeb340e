"""Admin of the AI turn's own records (issue 17): copilot drafts and AI provider sessions.

Registered from ``ConversationsConfig.ready``. Drafts are decided in the workspace (or the API);
here managers review outcomes and may discard pending ones (through ``drafts.discard_draft``).
Sessions are read-only: the lifecycle beat task moves them.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from apps.conversations import drafts
from apps.conversations.models import AISession, Draft
from apps.core.admin import EVERYONE, MANAGERS, OrgScopedAdmin
from apps.core.exceptions import ApplicationError


class DraftAdmin(OrgScopedAdmin):
    view_roles = EVERYONE
    edit_roles = MANAGERS
    list_display = (
        "__str__",
        "conversation",
        "status",
        "ai_app",
        "mention_name",
        "created_at",
        "expires_at",
        "decided_by",
        "decided_at",
    )
    list_filter = ("status", "ai_app")
    search_fields = ("text", "sent_text", "mention_name")
    list_select_related = ("conversation", "conversation__contact", "ai_app", "decided_by")
    readonly_fields = [f.name for f in Draft._meta.fields]
    actions = ["action_discard"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Discard the selected pending drafts"))
    def action_discard(self, request, queryset):
        done = 0
        for draft in queryset.filter(status=Draft.Status.PENDING).select_related("org"):
            try:
                drafts.discard_draft(org=draft.org, draft_id=draft.pk, user=request.user)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{draft}: {exc.message}", messages.ERROR)
        self.message_user(request, _("%(n)d draft(s) discarded.") % {"n": done}, messages.SUCCESS)


class AISessionAdmin(OrgScopedAdmin):
    view_roles = MANAGERS
    list_display = (
        "__str__",
        "conversation",
        "member_wxid",
        "ai_app",
        "state",
        "turns",
        "started_at",
        "last_activity_at",
    )
    list_filter = ("state", "ai_app")
    search_fields = ("member_wxid", "provider_conversation_id")
    list_select_related = ("conversation", "conversation__contact", "ai_app")
    readonly_fields = [f.name for f in AISession._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def register() -> None:
    for model, model_admin in ((Draft, DraftAdmin), (AISession, AISessionAdmin)):
        if not admin.site.is_registered(model):
            admin.site.register(model, model_admin)
