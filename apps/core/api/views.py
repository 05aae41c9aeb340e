"""The organisation-scoped API base classes every app's views inherit."""

from __future__ import annotations

from django.db.models import Q
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from apps.core.permissions import HasViewRole
from apps.core.tenancy import resolve_request_org
from apps.orgs.models import Role


class OrgScopedMixin:
    """Resolves the active organisation once per request, before permissions are checked.

    Unauthenticated requests skip resolution so that authentication answers 401 first.
    """

    read_role: str = Role.VIEWER
    write_role: str = Role.AGENT
    action_roles: dict[str, str] = {}
    permission_classes = [IsAuthenticated, HasViewRole]

    def initial(self, request, *args, **kwargs):
        self.perform_authentication(request)
        if request.user and request.user.is_authenticated:
            resolve_request_org(request)
        super().initial(request, *args, **kwargs)


class OrgScopedAPIView(OrgScopedMixin, APIView):
    """A plain API view in the active organisation."""


class OrgScopedGenericViewSet(OrgScopedMixin, viewsets.GenericViewSet):
    """Every queryset is filtered by ``request.org``; narrow further in ``scope_queryset()``.

    Creates save with ``org=request.org``. Another organisation's object answers 404.

    Subclasses cannot override ``get_queryset`` or ``get_object`` (a ``TypeError`` at class
    creation): the organisation filter is applied before and again after ``scope_queryset``, so
    a selector that builds its own queryset stays inside the organisation too. Platform rows
    (``org`` NULL, e.g. global prices) are readable only where ``include_platform_rows`` says so.
    """

    include_platform_rows = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get_queryset", "get_object"):
            if name in vars(cls):
                raise TypeError(
                    f"{cls.__module__}.{cls.__qualname__} overrides {name}(): narrow the "
                    "organisation's rows in scope_queryset() instead."
                )

    def org_scope(self) -> Q:
        scope = Q(org=self.request.org)
        return scope | Q(org__isnull=True) if self.include_platform_rows else scope

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        scope = self.org_scope()
        return self.scope_queryset(queryset.filter(scope)).filter(scope)

    def scope_queryset(self, queryset):
        return queryset

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["org"] = getattr(self.request, "org", None)
        return context

    def perform_create(self, serializer):
        serializer.save(org=self.request.org)


class OrgScopedViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    OrgScopedGenericViewSet,
):
    """CRUD in the active organisation."""

    # CreateModelMixin comes first in the MRO and its perform_create() saves without the org;
    # restate the org-scoped one here so a subclass that does not override it stays scoped.
    perform_create = OrgScopedGenericViewSet.perform_create


class OrgScopedReadOnlyViewSet(
    mixins.RetrieveModelMixin, mixins.ListModelMixin, OrgScopedGenericViewSet
):
    """Read-only in the active organisation."""
