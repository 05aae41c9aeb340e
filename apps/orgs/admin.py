from django.contrib import admin

from apps.core.admin import OrgScopedAdmin, admin_org_ids
from apps.orgs.models import Invitation, Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_field = "id"
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["timezone"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(id__in=admin_org_ids(request.user))

    def _allowed(self, request, obj) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return request.user.is_staff and bool(admin_org_ids(request.user))
        return obj.id in admin_org_ids(request.user)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    list_display = ["user", "org", "role", "created_at"]
    list_filter = ["role", "org"]
    search_fields = ["user__email", "user__name", "org__name"]
    autocomplete_fields = ["user"]


@admin.register(Invitation)
class InvitationAdmin(OrgScopedAdmin):
    list_display = ["email", "org", "role", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role", "org"]
    search_fields = ["email"]
    readonly_fields = ["token_hash", "accepted_at", "accepted_by", "revoked_at"]
