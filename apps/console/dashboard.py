"""The home page: what needs attention now, by role.

Cards (each shown to the roles that may act on or read it):
- conversations waiting for a person, and the longest wait (everyone; an agent under the
  "assigned" visibility rule counts their own and unassigned ones);
- WeChat accounts offline, banned or risk-controlled (not agents);
- open alerts by severity (not agents);
- budget use this month (not agents);
- today's inbound messages, AI answers and handoffs (everyone);
- the user's unread notifications (everyone).

The page re-renders its cards (``dashboard_cards_view``) when the shared WebSocket client
(static/app/live.js) reports a relevant event; see static/app/console.js.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Min, Q
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.console import console_membership
from apps.orgs.models import Organization, Role, role_at_least
from apps.orgs.org_settings import org_setting

ATTENTION_ACCOUNT_STATUSES = ("offline", "banned", "risk_controlled")


@dataclass
class Wait:
    seconds: int

    def __str__(self) -> str:
        minutes = self.seconds // 60
        if minutes < 1:
            return _("under a minute")
        if minutes < 60:
            return _("%(n)d min") % {"n": minutes}
        hours, minutes = divmod(minutes, 60)
        if hours < 24:
            return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
        return _("%(d)d days") % {"d": hours // 24}


def _link(name: str, query: str = "") -> str:
    try:
        return reverse(name) + (f"?{query}" if query else "")
    except NoReverseMatch:
        return ""


def _today_start(org: Organization) -> dt.datetime:
    local = timezone.now().astimezone(org.tzinfo)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def waiting_conversations(*, org: Organization, user, role: str) -> dict:
    from apps.conversations.models import Conversation

    queryset = Conversation.objects.filter(
        org=org, mode=Conversation.Mode.HUMAN, status__in=[Conversation.Status.PENDING]
    )
    if role == Role.AGENT and org_setting(org, "conversation_visibility") != "all":
        queryset = queryset.filter(Q(assignee=user) | Q(assignee__isnull=True))
    stats = queryset.aggregate(
        n=Count("id"),
        oldest=Min("handed_off_at"),
        unassigned=Count("id", filter=Q(assignee__isnull=True)),
        mine=Count("id", filter=Q(assignee=user)),
    )
    oldest = stats["oldest"]
    wait = Wait(int((timezone.now() - oldest).total_seconds())) if oldest else None
    return {
        "count": stats["n"],
        "unassigned": stats["unassigned"],
        "mine": stats["mine"],
        "longest_wait": wait,
        "longest_wait_seconds": wait.seconds if wait else 0,
        "link": _link("workspace:index") or _link("admin:conversations_conversation_changelist"),
    }


def attention_accounts(*, org: Organization) -> dict:
    from apps.wechat_accounts.models import WeChatAccount

    rows = list(
        WeChatAccount.objects.filter(org=org, status__in=ATTENTION_ACCOUNT_STATUSES).order_by(
            "status", "name"
        )[:10]
    )
    total = WeChatAccount.objects.filter(org=org).count()
    online = WeChatAccount.objects.filter(org=org, status=WeChatAccount.Status.ONLINE).count()
    return {
        "rows": [
            {
                "name": a.name or a.nickname or a.wxid,
                "status": a.status,
                "status_label": a.get_status_display(),
                "link": reverse("admin:wechat_accounts_wechataccount_change", args=[a.pk]),
            }
            for a in rows
        ],
        "count": WeChatAccount.objects.filter(
            org=org, status__in=ATTENTION_ACCOUNT_STATUSES
        ).count(),
        "online": online,
        "total": total,
        "link": reverse("admin:wechat_accounts_wechataccount_changelist"),
    }


def open_alerts(*, org: Organization) -> dict:
    from apps.monitoring.models import Alert

    queryset = Alert.objects.filter(org=org, resolved_at__isnull=True)
    by_severity = dict(queryset.values_list("severity").annotate(n=Count("id")))
    latest = list(queryset.order_by("-last_seen_at")[:5])
    return {
        "count": sum(by_severity.values()),
        "by_severity": [
            {"key": key, "label": label, "count": by_severity.get(key, 0)}
            for key, label in reversed(Alert.Severity.choices)
            if by_severity.get(key)
        ],
        "rows": [
            {
                "title": alert.title,
                "severity": alert.severity,
                "severity_label": alert.get_severity_display(),
                "link": reverse("admin:monitoring_alert_change", args=[alert.pk]),
            }
            for alert in latest
        ],
        "link": reverse("admin:monitoring_alert_changelist") + "?resolved_at__isempty=1",
    }


def budget_use(*, org: Organization) -> dict | None:
    from apps.billing import selectors
    from apps.billing.models import Budget

    statuses = selectors.budget_status_list(org=org)
    status = next((s for s in statuses if s.budget.scope == Budget.Scope.ORG), None)
    if status is None:
        return {"budget": None, "link": reverse("admin:billing_budget_changelist")}
    percent = float(status.percent)
    return {
        "budget": status.budget,
        "used": status.money_used,
        "limit": status.budget.money_limit,
        "currency": status.budget.currency,
        "percent": round(percent, 1),
        "bar": min(100, round(percent)),
        "level": "danger" if percent >= 95 else "warning" if percent >= 80 else "ok",
        "link": _link("admin:billing_costledger_usage"),
    }


def today_counts(*, org: Organization) -> dict:
    from apps.conversations.models import Conversation, Message

    since = _today_start(org)
    messages = Message.objects.filter(org=org, created_at__gte=since).aggregate(
        inbound=Count("id", filter=Q(direction=Message.Direction.INBOUND)),
        ai=Count(
            "id",
            filter=Q(direction=Message.Direction.OUTBOUND, sender_kind=Message.SenderKind.AI),
        ),
    )
    handoffs = Conversation.objects.filter(org=org, handed_off_at__gte=since).count()
    return {"inbound": messages["inbound"], "ai_answers": messages["ai"], "handoffs": handoffs}


def my_notifications(*, org: Organization, user) -> dict:
    from apps.monitoring.models import Notification

    queryset = Notification.objects.filter(org=org, user=user, read_at__isnull=True)
    return {
        "count": queryset.count(),
        "rows": list(queryset.order_by("-created_at")[:5]),
        "link": reverse("admin:monitoring_notification_changelist"),
    }


def dashboard_data(*, org: Organization, user, role: str) -> dict:
    """The cards of the home page for one member (``role`` in ``org``)."""
    staff_cards = role_at_least(role, Role.MANAGER) or role == Role.VIEWER
    data = {
        "waiting": waiting_conversations(org=org, user=user, role=role),
        "today": today_counts(org=org),
        "notifications": my_notifications(org=org, user=user),
        "accounts": attention_accounts(org=org) if staff_cards else None,
        "alerts": open_alerts(org=org) if staff_cards else None,
        "budget": budget_use(org=org) if staff_cards else None,
    }
    return data


def _context_for(request) -> dict:
    membership = console_membership(request)
    if membership is None:
        return {"dashboard": None}
    role = membership.role
    return {
        "dashboard": dashboard_data(org=membership.org, user=request.user, role=role),
        "dashboard_org": membership.org,
        "dashboard_live_monitor": role_at_least(role, Role.MANAGER),
        "dashboard_cards_url": reverse("admin:console_dashboard_cards"),
    }


def dashboard_callback(request, context: dict) -> dict:
    """unfold's DASHBOARD_CALLBACK: the index page's context."""
    context.update(_context_for(request))
    return context


def dashboard_cards_view(request):
    """The cards alone (re-fetched by the page on live events)."""
    return TemplateResponse(request, "admin/console/dashboard_cards.html", _context_for(request))
