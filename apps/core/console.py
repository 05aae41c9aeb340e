"""The console's active organisation: chosen per browser session, checked against membership.

Every active member signs in to the console (the admin). A user in several organisations works
in one at a time: the one stored in the session (``switch`` in the header), else their default
organisation, else their oldest membership. ``console_membership(request)`` resolves it once per
request; ``OrgScopedAdmin`` scopes every page to it and takes the role from it.
"""

from __future__ import annotations

from apps.orgs.models import Membership

SESSION_KEY = "console_org_id"
_CACHE = "_console_membership"


def console_memberships(user) -> list[Membership]:
    """The user's memberships, organisation loaded, by organisation name."""
    if not user or not user.is_authenticated or not user.is_active:
        return []
    return list(Membership.objects.select_related("org").filter(user=user).order_by("org__name"))


def console_membership(request) -> Membership | None:
    """The membership of the request's active organisation (None: not a member anywhere)."""
    if hasattr(request, _CACHE):
        return getattr(request, _CACHE)
    user = getattr(request, "user", None)
    memberships = console_memberships(user)
    chosen = None
    session = getattr(request, "session", None)
    wanted = session.get(SESSION_KEY) if session is not None else None
    for candidates in (wanted, getattr(user, "default_org_id", None)):
        chosen = chosen or next((m for m in memberships if m.org_id == candidates), None)
    if chosen is None and memberships:
        chosen = min(memberships, key=lambda m: (m.created_at, m.id))
    setattr(request, _CACHE, chosen)
    if user is not None and user.is_authenticated:
        # admin_org_ids(user) (used by admin classes that only see the user) follows it too.
        user.console_org_ids = [chosen.org_id] if chosen else []
    return chosen


def console_role(request) -> str | None:
    membership = console_membership(request)
    return membership.role if membership else None


def console_switch(request, org_id: int) -> Membership | None:
    """Make ``org_id`` the active organisation if the user is a member of it."""
    membership = next((m for m in console_memberships(request.user) if m.org_id == org_id), None)
    if membership is not None:
        request.session[SESSION_KEY] = membership.org_id
        if hasattr(request, _CACHE):
            delattr(request, _CACHE)
    return membership
