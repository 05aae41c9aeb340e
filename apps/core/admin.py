"""The admin mixin that keeps staff who are not superusers inside their organisations."""

from __future__ import annotations

from django.contrib import admin

from apps.orgs.models import Membership, Role

ADMIN_ROLES = (Role.OWNER, Role.ADMIN, Role.MANAGER)


def admin_org_ids(user) -> list[int]:
    """Organisations whose rows a staff user may see in the admin (owner/admin/manager)."""
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.filter(user=user, role__in=ADMIN_ROLES).values_list("org_id", flat=True)
    )


class OrgScopedAdmin(admin.ModelAdmin):
    """Superusers see every row; other staff only rows of organisations they manage.

    Foreign-key choices are narrowed the same way, and a save into another organisation is
    impossible because the ``org`` choices never include it.
    """

    org_field = "org"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.org_field}__in": admin_org_ids(request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if request.user.is_superuser or field is None:
            return field
        org_ids = admin_org_ids(request.user)
        model = db_field.related_model
        if model._meta.label == "orgs.Organization":
            field.queryset = field.queryset.filter(id__in=org_ids)
        elif any(f.name == "org" for f in model._meta.get_fields()):
            field.queryset = field.queryset.filter(org_id__in=org_ids)
        return field

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_add_permission(self, request):
        return self._allowed(request, None)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def _allowed(self, request, obj) -> bool:
        if request.user.is_superuser:
            return True
        if not (request.user.is_active and request.user.is_staff):
            return False
        if obj is None:
            return bool(admin_org_ids(request.user))
        return getattr(obj, f"{self.org_field}_id", None) in admin_org_ids(request.user)
