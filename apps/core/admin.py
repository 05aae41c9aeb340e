"""The one base class of every organisation-scoped admin page: scoping and role permissions.

Every active member signs in to the console (see ``apps.core.admin_site``); what each role may
see and change is decided here, from class attributes each admin sets (its policy):

- ``view_roles``: roles that see the page (read-only unless also in ``edit_roles``);
- ``edit_roles``: roles that add, change and delete (``add_roles``/``delete_roles`` when they
  differ);
- ``superuser_only``: platform internals, for superusers alone.

Defaults: viewers, managers, admins and owners see everything of their organisation;
admins and owners change it; agents see only pages that name them. Rows are always those of
the request's active organisation (``apps.core.console``); superusers see every organisation.
"""

from __future__ import annotations

from unfold.admin import ModelAdmin as UnfoldModelAdmin

from apps.orgs.models import Membership, Role

ADMIN_ROLES = (Role.OWNER, Role.ADMIN, Role.MANAGER)

# Role sets of the policy (see the module docstring).
EVERYONE = (Role.VIEWER, Role.AGENT, Role.MANAGER, Role.ADMIN, Role.OWNER)
READERS = (Role.VIEWER, Role.MANAGER, Role.ADMIN, Role.OWNER)  # all but agents
MANAGERS = (Role.MANAGER, Role.ADMIN, Role.OWNER)
ADMINS = (Role.ADMIN, Role.OWNER)
NOBODY: tuple = ()


def admin_org_ids(user) -> list[int]:
    """Organisations whose rows the user sees in the console: the active one (resolved per
    request by ``apps.core.console``), else every organisation they belong to."""
    if not user.is_authenticated:
        return []
    active = getattr(user, "console_org_ids", None)
    if active is not None:
        return list(active)
    return list(Membership.objects.filter(user=user).values_list("org_id", flat=True))


def request_role(request) -> str | None:
    """The user's role in the request's active organisation (None: not a member)."""
    from apps.core.console import console_role

    return console_role(request)


class OrgScopedAdmin(UnfoldModelAdmin):
    """Superusers see every row; members only rows of their active organisation, with the
    permissions of their role there (the policy attributes below).

    Foreign-key choices are narrowed the same way, and a save into another organisation is
    impossible because the ``org`` choices never include it.
    """

    org_field = "org"
    view_roles: tuple = READERS
    edit_roles: tuple = ADMINS
    add_roles: tuple | None = None
    delete_roles: tuple | None = None
    superuser_only = False

    def org_ids(self, request) -> list[int]:
        """The organisations of this request: the active one (resolved first)."""
        request_role(request)
        return admin_org_ids(request.user)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.org_field}__in": self.org_ids(request)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if request.user.is_superuser or field is None:
            return field
        org_ids = self.org_ids(request)
        model = db_field.related_model
        if model._meta.label == "orgs.Organization":
            field.queryset = field.queryset.filter(id__in=org_ids)
            if len(org_ids) == 1:  # the active organisation, preselected
                field.initial = org_ids[0]
                field.empty_label = None
        elif any(f.name == "org" for f in model._meta.get_fields()):
            field.queryset = field.queryset.filter(org_id__in=org_ids)
        return field

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj, (*self.view_roles, *self.edit_roles))

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj, self.edit_roles)

    def has_add_permission(self, request):
        roles = self.edit_roles if self.add_roles is None else self.add_roles
        return self._allowed(request, None, roles)

    def has_delete_permission(self, request, obj=None):
        roles = self.edit_roles if self.delete_roles is None else self.delete_roles
        return self._allowed(request, obj, roles)

    def _allowed(self, request, obj, roles=None) -> bool:
        user = request.user
        if not (user.is_authenticated and user.is_active):
            return False
        if user.is_superuser:
            return True
        if self.superuser_only:
            return False
        if request_role(request) not in (self.edit_roles if roles is None else roles):
            return False
        if obj is None:
            return bool(admin_org_ids(user))
        return self.object_org_id(obj) in admin_org_ids(user)

    def object_org_id(self, obj) -> int | None:
        return getattr(obj, f"{self.org_field}_id", None)
