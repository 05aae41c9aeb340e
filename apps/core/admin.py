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

import functools

from django.conf import settings
from django.contrib.admin import RelatedFieldListFilter, RelatedOnlyFieldListFilter
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
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


def scope_to_orgs(queryset, org_ids):
    """``queryset`` narrowed to rows of ``org_ids``: organisations themselves, users who are
    members of them, and every model with an ``org`` foreign key. Other models (platform data
    such as global prices) are returned as they are."""
    model = queryset.model
    if model._meta.label == "orgs.Organization":
        return queryset.filter(id__in=org_ids)
    if model._meta.label == settings.AUTH_USER_MODEL:
        return queryset.filter(memberships__org_id__in=org_ids).distinct()
    if any(f.name == "org" for f in model._meta.get_fields()):
        return queryset.filter(org_id__in=org_ids)
    return queryset


def _is_scoped(model) -> bool:
    if model is None:
        return False
    if model._meta.label in ("orgs.Organization", settings.AUTH_USER_MODEL):
        return True
    return any(f.name == "org" for f in model._meta.get_fields())


class OrgScopedRelatedFilterMixin:
    """A related-field list filter whose choices are the active organisation's rows only."""

    def field_choices(self, field, request, model_admin):
        allowed = scope_to_orgs(field.related_model._default_manager.all(), _org_ids(request))
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(
            include_blank=False,
            ordering=ordering,
            limit_choices_to={"pk__in": allowed.values("pk")},
        )


@functools.cache
def _scoped_filter_class(cls):
    return type(f"OrgScoped{cls.__name__}", (OrgScopedRelatedFilterMixin, cls), {})


class _ScopedRawIdWidgetMixin:
    """A raw-id widget that names only rows the form may choose (never another
    organisation's object typed in by id)."""

    def label_and_url_for_value(self, value):
        if value and not self.scoped_queryset.filter(pk=value).exists():
            return "", ""
        return super().label_and_url_for_value(value)


@functools.cache
def _scoped_widget_class(cls):
    return type(f"OrgScoped{cls.__name__}", (_ScopedRawIdWidgetMixin, cls), {})


def _org_ids(request) -> list[int]:
    request_role(request)
    return admin_org_ids(request.user)


def scope_formfield(field, request):
    """Narrow a relation form field (foreign key or many-to-many) to the request's
    organisations; superusers keep every choice."""
    if field is None or request.user.is_superuser or not hasattr(field, "queryset"):
        return field
    field.queryset = scope_to_orgs(field.queryset, _org_ids(request))
    widget = field.widget
    if isinstance(widget, ForeignKeyRawIdWidget):
        widget.__class__ = _scoped_widget_class(type(widget))
        widget.scoped_queryset = field.queryset
    return field


class OrgScopedInlineMixin:
    """Inlines of an ``OrgScopedAdmin`` (applied to every inline automatically): foreign-key and
    many-to-many choices of the active organisation only, and the parent page's role policy for
    viewing, adding, changing and deleting rows. (Django's default asks for model permissions,
    which members never hold: managers saw no SOP steps to edit.) An inline class that defines a
    permission method of its own keeps it."""

    def _parent_admin(self):
        return self.admin_site._registry.get(self.parent_model)

    def _defines(self, name: str) -> bool:
        for klass in type(self).__mro__[1:]:
            if klass is OrgScopedInlineMixin or name not in vars(klass):
                continue
            return not klass.__module__.startswith(("django.", "unfold."))
        return False

    def _by_parent(self, name: str, request, obj, parent_check: str) -> bool:
        parent = self._parent_admin()
        if request.user.is_superuser or parent is None or self._defines(name):
            return getattr(super(), name)(request, obj)
        return getattr(parent, parent_check)(request, obj)

    def has_view_permission(self, request, obj=None):
        return self._by_parent("has_view_permission", request, obj, "has_view_permission")

    def has_add_permission(self, request, obj=None):
        return self._by_parent("has_add_permission", request, obj, "has_change_permission")

    def has_change_permission(self, request, obj=None):
        return self._by_parent("has_change_permission", request, obj, "has_change_permission")

    def has_delete_permission(self, request, obj=None):
        return self._by_parent("has_delete_permission", request, obj, "has_change_permission")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return scope_formfield(
            super().formfield_for_foreignkey(db_field, request, **kwargs), request
        )

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return scope_formfield(field, request)


@functools.cache
def _scoped_inline_class(cls):
    return type(cls.__name__, (OrgScopedInlineMixin, cls), {"__module__": cls.__module__})


class OrgScopedAdmin(UnfoldModelAdmin):
    """Superusers see every row; members only rows of their active organisation, with the
    permissions of their role there (the policy attributes below).

    Every relation is narrowed the same way, once, for every admin class: foreign-key and
    many-to-many choices (inlines included), related-field list filters (the ``org`` filter is
    hidden from members), autocomplete (only towards organisation-scoped pages) and raw-id
    labels; a save into another organisation raises ``PermissionDenied``.
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
            return field
        return scope_formfield(field, request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return scope_formfield(field, request)

    def get_inlines(self, request, obj):
        # Wrapped before Django instantiates them and asks their permissions.
        return [
            inline if issubclass(inline, OrgScopedInlineMixin) else _scoped_inline_class(inline)
            for inline in super().get_inlines(request, obj)
        ]

    def get_list_filter(self, request):
        """Non-superusers: no filter by organisation (they see one), and related-field filters
        list only the active organisation's rows."""
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        scoped = []
        for item in filters:
            path, cls = (item[0], item[1]) if isinstance(item, list | tuple) else (item, None)
            if not isinstance(path, str):
                scoped.append(item)
                continue
            if path == self.org_field or path == "org" or path.endswith("__org"):
                continue
            try:
                field = get_fields_from_path(self.model, path)[-1]
            except (FieldDoesNotExist, NotRelationField):
                scoped.append(item)
                continue
            if not (field.is_relation and _is_scoped(field.related_model)):
                scoped.append(item)
            elif cls is None:
                scoped.append((path, _scoped_filter_class(RelatedFieldListFilter)))
            elif issubclass(cls, RelatedOnlyFieldListFilter):
                scoped.append(item)  # its choices come from the scoped queryset already
            elif issubclass(cls, RelatedFieldListFilter):
                scoped.append((path, _scoped_filter_class(cls)))
            else:
                scoped.append(item)
        return scoped

    def get_autocomplete_fields(self, request):
        """Autocomplete only towards organisation-scoped admin pages (their lookups answer with
        the active organisation's rows); other relations fall back to a scoped select."""
        fields = super().get_autocomplete_fields(request)
        if request.user.is_superuser:
            return fields
        registry = self.admin_site._registry
        return [
            name
            for name in fields
            if isinstance(
                registry.get(self.model._meta.get_field(name).related_model), OrgScopedAdmin
            )
        ]

    def save_form(self, request, form, change):
        """A member's save stays in their organisation, whatever the form posted."""
        obj = super().save_form(request, form, change)
        if request.user.is_superuser or self.org_field != "org" or not hasattr(obj, "org_id"):
            return obj
        org_ids = self.org_ids(request)
        if obj.org_id is None and len(org_ids) == 1:
            obj.org_id = org_ids[0]
        if obj.org_id not in org_ids:
            raise PermissionDenied
        return obj

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_actions(self, request):
        """Actions that declare no ``permissions`` change rows, so they follow the page's edit
        policy: a viewer neither sees nor can post them (Django offers an undeclared action to
        everyone who sees the list). Read-only actions declare ``permissions=["view"]``."""
        actions = super().get_actions(request)
        if self._allowed(request, None, self.edit_roles):  # the policy, not the form's lock
            return actions
        return {
            name: action
            for name, action in actions.items()
            if getattr(action[0], "allowed_permissions", None)
        }

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
