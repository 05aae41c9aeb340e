"""The workspace page and the short-lived WebSocket token of same-origin pages.

Both use the admin's session (the same login). The page itself is a shell: its data comes from
the REST API (session-authenticated, ``X-Organization`` set by the page) and the WebSocket.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET
from rest_framework_simplejwt.tokens import AccessToken

from apps.conversations import selectors
from apps.conversations.models import Conversation, Label, Message
from apps.conversations.org_prefs import sees_all
from apps.core.tenancy import resolve_membership
from apps.integrations.models import AIApp
from apps.orgs.models import Membership, Role, role_at_least
from apps.wechat_accounts.models import WeChatAccount

# Where a session may have stored the organisation chosen in the console's header.
SESSION_ORG_KEYS = ("console_org_id",)


def active_membership(request):
    """The member's active organisation: ``?org=``, the console's choice, else the default;
    404 (``Http404``) when the user is not a member of the requested one."""
    if getattr(request, "membership", None) is not None:
        return request.membership
    requested = request.GET.get("org")
    if not requested:
        for key in SESSION_ORG_KEYS:
            if request.session.get(key):
                requested = str(request.session[key])
                break
    try:
        membership = resolve_membership(request.user, requested)
    except ValueError:
        raise Http404 from None
    request.membership, request.org = membership, membership.org
    return membership


def _choices(model_choices) -> dict[str, str]:
    return {value: str(label) for value, label in model_choices}


@never_cache
@ensure_csrf_cookie  # the page's fetch() calls send it back as X-CSRFToken
@require_GET
def index(request, conversation_id: int | None = None):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse(settings.LOGIN_URL))
    membership = active_membership(request)
    org = membership.org
    if conversation_id is not None and (
        selectors.conversation_list(org=org, user=request.user, role=membership.role)
        .filter(pk=conversation_id)
        .first()
        is None
    ):
        raise Http404
    members = [
        {"id": m.user_id, "name": m.user.get_full_name() or m.user.email}
        for m in Membership.objects.filter(org=org).select_related("user").order_by("id")[:500]
    ]
    accounts = list(
        WeChatAccount.objects.filter(org=org).order_by("name").values("id", "name")[:200]
    )
    # The AI apps by name, so a reply says which app answered (failover may switch apps).
    ai_apps = {
        str(pk): name
        for pk, name in AIApp.objects.filter(org=org).order_by("id").values_list("id", "name")[:200]
    }
    labels = list(
        Label.objects.filter(org=org).order_by("name").values_list("name", flat=True)[:200]
    )
    config = {
        "org": {"id": org.id, "slug": org.slug, "name": org.name},
        "user": {
            "id": request.user.id,
            "name": request.user.get_full_name() or request.user.email,
        },
        "role": membership.role,
        "can_write": role_at_least(membership.role, Role.AGENT),
        "sees_all": sees_all(org=org, user=request.user, role=membership.role),
        "conversation_id": conversation_id,
        "members": members,
        "accounts": accounts,
        "labels_all": labels,
        "ai_apps": ai_apps,
        "urls": {
            "api": "/api/v1/",
            "ws": "/ws/chat/",
            "ws_token": reverse("workspace:ws_token"),
            "page": reverse("workspace:index"),
            "admin_conversation": reverse("admin:conversations_conversation_change", args=[0]),
            "admin_contact": reverse("admin:wechat_accounts_contact_change", args=[0]),
        },
        "labels": {
            "mode": _choices(Conversation.Mode.choices),
            "status": _choices(Conversation.Status.choices),
            "message_status": _choices(Message.Status.choices),
            "sender_kind": _choices(Message.SenderKind.choices),
            "kind": _choices(Message.Kind.choices),
        },
    }
    return render(
        request,
        "workspace/index.html",
        {"config": config, "org": org, "status_choices": Conversation.Status.choices},
    )


@never_cache
@require_GET
def ws_token(request):
    """A JWT access token valid for ``WORKSPACE_WS_TOKEN_SECONDS`` for the page's WebSocket
    ``auth`` message; the session (the page's login) is the credential."""
    if not request.user.is_authenticated:
        return JsonResponse(
            {"error": {"code": "not_authenticated", "message": _("Sign in first.")}}, status=401
        )
    membership = active_membership(request)
    lifetime = int(getattr(settings, "WORKSPACE_WS_TOKEN_SECONDS", 60))
    token = AccessToken.for_user(request.user)
    token.set_exp(lifetime=timedelta(seconds=lifetime))
    return JsonResponse({"token": str(token), "org": membership.org_id, "expires_in": lifetime})
