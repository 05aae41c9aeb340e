"""Admin of the wechat_accounts app: accounts (status badges, last seen, today's sends against
the limit, contact sync progress, login QR page and actions through the services), contacts,
tags, Moments, friend requests and the status history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import TabularInline

from apps.core.admin import EVERYONE, MANAGERS, OrgScopedAdmin, request_role
from apps.core.exceptions import ApplicationError
from apps.media.services import media_file_create
from apps.orgs.models import Role
from apps.orgs.org_settings import StringListField
from apps.wechat_accounts import send_policy, services
from apps.wechat_accounts.admin_forms import MomentPostForm
from apps.wechat_accounts.models import (
    AccountAIApp,
    AccountStatusEvent,
    Contact,
    FriendRequest,
    GroupMember,
    MomentPost,
    Tag,
    WeChatAccount,
)

BADGE_COLORS = {
    WeChatAccount.Status.ONLINE: "#2e7d32",
    WeChatAccount.Status.PENDING_LOGIN: "#1565c0",
    WeChatAccount.Status.OFFLINE: "#ef6c00",
    WeChatAccount.Status.RISK_CONTROLLED: "#c62828",
    WeChatAccount.Status.BANNED: "#000000",
    WeChatAccount.Status.LOGGED_OUT: "#757575",
}


class StatusEventInline(TabularInline):
    model = AccountStatusEvent
    extra = 0
    can_delete = False
    fields = ["at", "from_status", "to_status", "reason"]
    readonly_fields = fields
    ordering = ["-at"]
    max_num = 0


class _AccountAIAppFormSet(BaseInlineFormSet):
    def save_new(self, form, commit=True):
        form.instance.org_id = self.instance.org_id  # the account's organisation
        return super().save_new(form, commit)


class AccountAIAppInline(TabularInline):
    """The account's AI apps in failover order (empty: the organisation's list)."""

    model = AccountAIApp
    formset = _AccountAIAppFormSet
    fields = ["position", "ai_app"]
    ordering = ["position", "id"]
    extra = 0
    verbose_name = _("AI app (failover order)")
    verbose_name_plural = _(
        "AI apps in failover order (empty: the organisation's default app, then its failover list)"
    )


LOGIN_STATE_LABELS = {
    "waiting": _("waiting for the scan"),
    "scanned": _("scanned: confirm on the phone"),
    "confirmed": _("confirmed"),
    "logged_in": _("logged in"),
    "expired": _("the code expired"),
}


def _run(modeladmin, request, queryset, fn, done_message) -> None:
    for account in queryset:
        try:
            fn(account)
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{account}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{account}: {done_message}", messages.SUCCESS)


@admin.register(WeChatAccount)
class WeChatAccountAdmin(OrgScopedAdmin):
    edit_roles = MANAGERS
    list_display = [
        "name",
        "org",
        "status_badge",
        "wxid",
        "nickname",
        "last_seen_at",
        "sends_today",
        "sync_progress",
        "reply_mode",
        "group_reply_policy",
        "login_link",
    ]
    list_filter = ["status", "connection__provider", "reply_mode", "group_reply_policy", "org"]
    search_fields = ["name", "wxid", "nickname", "device_id"]
    list_select_related = ["org", "connection"]
    readonly_fields = [
        "wxid",
        "nickname",
        "avatar_url",
        "device_id",
        "status",
        "status_reason",
        "status_changed_at",
        "last_seen_at",
        "logged_in_at",
        "login_state",
        "contacts_sync_state",
        "contacts_sync_done",
        "contacts_sync_total",
        "contacts_sync_error",
        "contacts_synced_at",
    ]
    exclude = [
        "login_uuid",
        "login_qr_image",
        "login_expires_at",
        "login_started_at",
        "moments_fetched_at",
    ]
    inlines = [AccountAIAppInline, StatusEventInline]
    actions = ["action_logout", "action_sync_contacts", "action_check_online"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "reply_keywords":
            return StringListField(
                label=db_field.verbose_name,
                required=False,
                help_text=_("One keyword per entry; press Enter after each."),
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:8px">{}</span>',
            BADGE_COLORS.get(obj.status, "#757575"),
            obj.get_status_display(),
        )

    @admin.display(description=_("sent today / limit"))
    def sends_today(self, obj):
        return f"{send_policy.sends_in_day_window(obj)} / {obj.send_limit_per_day}"

    @admin.display(description=_("contact sync"))
    def sync_progress(self, obj):
        if obj.contacts_sync_state == WeChatAccount.SyncState.IDLE:
            return "—"
        state = obj.get_contacts_sync_state_display()
        return f"{state} {obj.contacts_sync_done}/{obj.contacts_sync_total}"

    @admin.display(description=_("login"))
    def login_link(self, obj):
        if obj.status == WeChatAccount.Status.ONLINE:
            return "—"
        url = reverse("admin:wechat_accounts_wechataccount_login", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("QR login"))

    def get_urls(self):
        urls = [
            path(
                "<int:account_id>/login/",
                self.admin_site.admin_view(self.login_view),
                name="wechat_accounts_wechataccount_login",
            )
        ]
        return urls + super().get_urls()

    def login_view(self, request, account_id: int):
        """Shows the login QR (starting a login on first visit) and its state; reload to poll."""
        account = get_object_or_404(self.get_queryset(request), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        error = ""
        if request.method == "POST" or (
            account.status != WeChatAccount.Status.PENDING_LOGIN or not account.login_qr_image
        ):
            if account.status != WeChatAccount.Status.ONLINE:
                try:
                    services.account_login_start(org=account.org, account_id=account.pk)
                except ApplicationError as exc:
                    error = exc.message
        status = services.account_login_status(org=account.org, account_id=account.pk)
        status["status_label"] = WeChatAccount.Status(status["status"]).label
        status["login_state_label"] = LOGIN_STATE_LABELS.get(status.get("login_state") or "", "")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Log in %(name)s") % {"name": account.name},
            "account": account,
            "login": status,
            "error": error,
        }
        return TemplateResponse(request, "admin/wechat_accounts/login.html", context)

    @admin.action(description=_("Log out"))
    def action_logout(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            lambda a: services.account_logout(org=a.org, account_id=a.pk),
            _("logged out"),
        )

    @admin.action(description=_("Sync contacts"))
    def action_sync_contacts(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            lambda a: services.account_sync_contacts_start(org=a.org, account_id=a.pk),
            _("contact sync started"),
        )

    @admin.action(description=_("Check online"))
    def action_check_online(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            lambda a: services.account_check_online(org_id=a.org_id, account_id=a.pk),
            _("checked"),
        )


class GroupMemberInline(TabularInline):
    model = GroupMember
    extra = 0
    fields = ["member_wxid", "nickname", "display_name", "is_admin", "is_owner"]
    readonly_fields = fields
    can_delete = False
    max_num = 0


@admin.register(Contact)
class ContactAdmin(OrgScopedAdmin):
    view_roles = EVERYONE
    edit_roles = (Role.AGENT, *MANAGERS)  # agents edit the tags and the remark only
    delete_roles = MANAGERS
    agent_editable = ("tags", "remark")
    list_display = [
        "contact_name",
        "wxid",
        "kind",
        "account",
        "reply_policy",
        "is_blocked",
        "added_at",
        "removed_at",
    ]
    list_filter = ["kind", "reply_policy", "is_blocked", "account", "tags"]
    search_fields = ["wxid", "nickname", "remark", "alias"]
    list_select_related = ["account"]
    readonly_fields = [
        "account",
        "wxid",
        "kind",
        "nickname",
        "alias",
        "avatar_url",
        "sex",
        "added_at",
        "removed_at",
        "synced_at",
    ]
    filter_horizontal = ["tags"]
    inlines = [GroupMemberInline]

    @admin.display(description=_("name"), ordering="nickname")
    def contact_name(self, obj):
        return obj.display_name

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if request_role(request) == Role.AGENT and not request.user.is_superuser:
            names = [f.name for f in self.model._meta.fields if f.name != "id"]
            fields += [n for n in names if n not in fields and n not in self.agent_editable]
        return fields

    def has_add_permission(self, request):
        return False


@admin.register(Tag)
class TagAdmin(OrgScopedAdmin):
    edit_roles = MANAGERS
    list_display = ["name", "color", "org"]
    search_fields = ["name"]
    list_filter = ["org"]
    readonly_fields = ["platform_label_ids"]


@admin.register(MomentPost)
class MomentPostAdmin(OrgScopedAdmin):
    form = MomentPostForm
    edit_roles = MANAGERS
    fieldsets = [
        (None, {"fields": ["account", "text", "scheduled_at"]}),
        (_("Images"), {"fields": ["image_urls", "image_uploads"]}),
        (_("Link"), {"fields": ["link_title", "link_url", "link_description", "link_thumb_url"]}),
        (_("Who sees it"), {"fields": ["visibility", "visible_tags"]}),
    ]
    result_fieldset = (
        _("Posting result"),
        {"fields": ["status", "platform_id", "attempts", "error", "posted_at"]},
    )

    def get_fieldsets(self, request, obj=None):
        # The result only exists once the post does.
        return [*self.fieldsets, self.result_fieldset] if obj else self.fieldsets

    list_display = ["__str__", "account", "status", "scheduled_at", "posted_at", "platform_id"]
    list_filter = ["status", "visibility", "account"]
    search_fields = ["text", "platform_id"]
    readonly_fields = ["status", "platform_id", "attempts", "error", "posted_at", "created_by"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        uploads = [
            media_file_create(
                org=obj.org, content=f, name=f.name, kind="image", created_by=request.user
            )
            for f in form.cleaned_data.get("image_uploads") or []
        ]
        post = services.moment_create(
            org=obj.org,
            account=obj.account,
            text=obj.text,
            images=obj.images,
            image_media=uploads,
            link=obj.link,
            visibility=obj.visibility,
            scheduled_at=obj.scheduled_at,
            user=request.user,
        )
        obj.pk = post.pk


@admin.register(FriendRequest)
class FriendRequestAdmin(OrgScopedAdmin):
    edit_roles = MANAGERS
    list_display = ["__str__", "account", "from_wxid", "status", "created_at", "handled_at"]
    list_filter = ["status", "account"]
    search_fields = ["from_wxid", "nickname"]
    readonly_fields = [f.name for f in FriendRequest._meta.fields]
    actions = ["action_accept"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Accept"))
    def action_accept(self, request, queryset):
        for req in queryset:
            try:
                services.friend_request_accept(org=req.org_id, request_id=req.pk, user=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{req}: {exc.message}", messages.ERROR)


@admin.register(AccountStatusEvent)
class AccountStatusEventAdmin(OrgScopedAdmin):
    list_display = ["account", "from_status", "to_status", "reason", "at"]
    list_filter = ["to_status"]
    search_fields = ["account__name", "reason"]
    readonly_fields = ["account", "from_status", "to_status", "reason", "at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
