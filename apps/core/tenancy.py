"""Resolving the active organisation of a request, once, from membership.

``X-Organization: <slug or id>`` chooses it; otherwise the user's default organisation, otherwise
their oldest membership. A user who is not a member of the requested organisation gets 404, as if
it did not exist.
"""

from __future__ import annotations

from django.http import Http404

from apps.core.logcontext import bind
from apps.orgs.models import Membership

ORG_HEADER = "HTTP_X_ORGANIZATION"


def resolve_membership(user, requested: str | None) -> Membership:
    """The caller's membership of the requested (or default) organisation; 404 otherwise."""
    if not user or not user.is_authenticated:
        raise Http404
    memberships = Membership.objects.select_related("org").filter(user=user)
    requested = (requested or "").strip()
    if requested:
        lookup = {"org_id": int(requested)} if requested.isdigit() else {"org__slug": requested}
        membership = memberships.filter(**lookup).first()
    else:
        membership = None
        if user.default_org_id:
            membership = memberships.filter(org_id=user.default_org_id).first()
        membership = membership or memberships.order_by("created_at", "id").first()
    if membership is None:
        raise Http404
    return membership


def resolve_request_org(request) -> None:
    """Set ``request.org`` and ``request.membership`` (idempotent within a request)."""
    if getattr(request, "membership", None) is not None:
        return
    membership = resolve_membership(request.user, request.META.get(ORG_HEADER))
    request.membership = membership
    request.org = membership.org
    bind(org_id=membership.org_id, user_id=membership.user_id)
