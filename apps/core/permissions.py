"""Role permission classes. The organisation is already resolved on the request."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.orgs.models import Role, role_at_least


class _MinimumRole(BasePermission):
    minimum_role: str = Role.VIEWER

    def has_permission(self, request, view) -> bool:
        membership = getattr(request, "membership", None)
        return bool(membership and role_at_least(membership.role, self.minimum_role))


class IsOrgMember(_MinimumRole):
    minimum_role = Role.VIEWER


class IsAgentOrAbove(_MinimumRole):
    minimum_role = Role.AGENT


class IsManagerOrAbove(_MinimumRole):
    minimum_role = Role.MANAGER


class IsOwnerOrAdmin(_MinimumRole):
    minimum_role = Role.ADMIN


class IsOwner(_MinimumRole):
    minimum_role = Role.OWNER


class HasViewRole(BasePermission):
    """Reads need ``view.read_role``, writes ``view.write_role``; ``view.action_roles`` overrides
    per action (e.g. ``{"destroy": Role.ADMIN}``)."""

    def has_permission(self, request, view) -> bool:
        membership = getattr(request, "membership", None)
        if membership is None:
            return False
        action = getattr(view, "action", None)
        required = getattr(view, "action_roles", {}).get(action)
        if required is None:
            safe = request.method in SAFE_METHODS
            required = getattr(view, "read_role" if safe else "write_role", Role.VIEWER)
        return role_at_least(membership.role, required)
