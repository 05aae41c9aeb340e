"""Turns the domain events of ``apps.core.events`` into notifications (connected in
``MonitoringConfig.ready``). A receiver never raises into the sender: it logs instead."""

from __future__ import annotations

import functools
import logging

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from apps.core import events
from apps.monitoring.models import Notification
from apps.orgs.models import Organization, Role

logger = logging.getLogger(__name__)

OWNERS_AND_MANAGERS = [Role.OWNER, Role.ADMIN, Role.MANAGER]
OWNERS_AND_ADMINS = [Role.OWNER, Role.ADMIN]

# Account statuses (wechat_accounts state machine) by how bad they are.
_URGENT_ACCOUNT_STATUSES = {"banned", "risk_controlled"}
_WARNING_ACCOUNT_STATUSES = {"offline", "logged_out"}
# Alerts raised from these events are not notified again: the event's own receiver above
# already told the same people (one notification per occurrence, not two).
_ALREADY_NOTIFIED_ALERT_SOURCES = {"account", "budget"}


def _safe(receiver):
    @functools.wraps(receiver)
    def wrapper(sender, **kwargs):
        try:
            receiver(sender, **kwargs)
        except Exception:  # noqa: BLE001 - a notification must never break the sender's work.
            logger.exception("Notification receiver %s failed", receiver.__name__)

    return wrapper


def _org(org_id) -> Organization | None:
    return Organization.objects.filter(id=org_id).first()


def _notify(**kwargs):
    from apps.monitoring.services import notify

    return notify(**kwargs)


def _admin_url(name: str, object_id) -> str:
    """The console page of an object (notification links open it, never a 404)."""
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(f"admin:{name}_change", args=[object_id])
    except NoReverseMatch:
        return ""


def _status_label(status: str) -> str:
    from apps.wechat_accounts.models import WeChatAccount

    if status in WeChatAccount.Status.values:
        return str(WeChatAccount.Status(status).label)
    return status


def account_status_title(name: str, status: str) -> str:
    """One sentence a person reads: what happened to which account, and what to do."""
    sentences = {
        "risk_controlled": _("WeChat account “%(name)s” is risk-controlled: please act now"),
        "banned": _("WeChat account “%(name)s” was banned"),
        "offline": _("WeChat account “%(name)s” went offline"),
        "logged_out": _("WeChat account “%(name)s” was logged out: log it in again"),
        "online": _("WeChat account “%(name)s” is online again"),
        "pending_login": _("WeChat account “%(name)s” is waiting for its login"),
    }
    sentence = sentences.get(status)
    if sentence is None:
        return _("WeChat account “%(name)s” is now %(status)s") % {
            "name": name,
            "status": _status_label(status),
        }
    return sentence % {"name": name}


@_safe
def on_account_status_changed(
    sender, *, org_id, account_id, from_status, to_status, reason="", **_kwargs
):
    from apps.wechat_accounts.models import WeChatAccount

    org = _org(org_id)
    if org is None:
        return
    status = str(to_status).lower()
    if status in _URGENT_ACCOUNT_STATUSES:
        kind = Notification.Type.URGENT
    elif status in _WARNING_ACCOUNT_STATUSES:
        kind = Notification.Type.WARNING
    elif status == "online":
        kind = Notification.Type.SUCCESS
    else:
        kind = Notification.Type.INFO
    account = WeChatAccount.objects.filter(org=org, id=account_id).first()
    name = (account.name or account.nickname or account.wxid) if account else str(account_id)
    message = _("Status: %(old)s → %(new)s.") % {
        "old": _status_label(str(from_status)),
        "new": _status_label(status),
    }
    if reason:
        message += " " + _("Reason: %(reason)s") % {"reason": reason}
    _notify(
        org=org,
        roles=OWNERS_AND_MANAGERS,
        type=kind,
        category="account_status",
        title=account_status_title(name, status),
        message=message,
        action_url=_admin_url("wechat_accounts_wechataccount", account_id),
        data={"account_id": account_id, "from_status": from_status, "to_status": to_status},
    )


HANDOFF_REASONS = {
    "keyword": _lazy("the customer asked for a person"),
    "sentiment": _lazy("the customer sounds unhappy"),
    "ai_failed": _lazy("the AI could not answer"),
    "budget": _lazy("the AI budget is used up"),
    "phone_reply": _lazy("the salesperson answered from the phone"),
    "no_ai_app": _lazy("no AI app is set up"),
    "agent": _lazy("an agent took it over"),
}


@_safe
def on_conversation_handed_off(
    sender, *, org_id, conversation_id, reason="", assignee_id=None, **_kwargs
):
    from apps.conversations.models import Conversation

    org = _org(org_id)
    if org is None:
        return
    target = {"users": [assignee_id]} if assignee_id else {"roles": OWNERS_AND_MANAGERS}
    conversation = (
        Conversation.objects.select_related("contact").filter(org=org, id=conversation_id).first()
    )
    customer = str(conversation.contact) if conversation and conversation.contact_id else ""
    _notify(
        org=org,
        type=Notification.Type.WARNING,
        category="handoff",
        title=_("Customer “%(name)s” is waiting for a person") % {"name": customer}
        if customer
        else _("A conversation needs a person"),
        message=_("Handed over because %(reason)s.")
        % {"reason": HANDOFF_REASONS.get(reason) or reason or _("no reason was given")},
        action_url=_admin_url("conversations_conversation", conversation_id),
        data={"conversation_id": conversation_id, "reason": reason},
        **target,
    )


@_safe
def on_budget_threshold_crossed(
    sender, *, org_id, budget_id, threshold, period, used=None, limit=None, **_kwargs
):
    from apps.billing.models import Budget
    from apps.core.money import format_money

    org = _org(org_id)
    if org is None:
        return
    threshold = int(threshold)
    if threshold >= 100:
        kind = Notification.Type.URGENT
    elif threshold >= 95:
        kind = Notification.Type.ERROR
    else:
        kind = Notification.Type.WARNING
    budget = Budget.objects.filter(org=org, id=budget_id).first()
    currency = budget.currency if budget else "CNY"
    _notify(
        org=org,
        roles=OWNERS_AND_ADMINS,
        type=kind,
        category="budget",
        title=_("Budget “%(name)s” is %(threshold)s%% used")
        % {"name": str(budget) if budget else budget_id, "threshold": threshold},
        message=_("%(used)s of %(limit)s used in %(period)s.")
        % {
            "used": format_money(used, currency) if used is not None else "—",
            "limit": format_money(limit, currency) if limit is not None else "—",
            "period": period,
        },
        action_url=_admin_url("billing_budget", budget_id),
        data={
            "budget_id": budget_id,
            "threshold": threshold,
            "period": period,
            "used": str(used),
            "limit": str(limit),
        },
    )


_SEVERITY_TYPES = {
    "critical": Notification.Type.URGENT,
    "error": Notification.Type.ERROR,
    "warning": Notification.Type.WARNING,
    "info": Notification.Type.INFO,
}


@_safe
def on_alert_raised(
    sender, *, org_id, alert_id, severity="warning", title="", message="", source="", **_kwargs
):
    """The alerts work may send ``severity``, ``title`` and ``message`` with the signal; without
    them a generic warning is stored."""
    if source in _ALREADY_NOTIFIED_ALERT_SOURCES:
        return
    org = _org(org_id)
    if org is None:
        return
    _notify(
        org=org,
        roles=OWNERS_AND_MANAGERS,
        type=_SEVERITY_TYPES.get(str(severity).lower(), Notification.Type.WARNING),
        category="alert",
        title=title or _("Alert raised"),
        message=message,
        action_url=_admin_url("monitoring_alert", alert_id),
        data={"alert_id": alert_id, "severity": severity},
    )


def _breaker_fingerprint(ai_app_id) -> str:
    from apps.monitoring.alerting import fingerprint_for

    return fingerprint_for("service_down", "ai_app", str(ai_app_id), "breaker")


@_safe
def on_ai_app_breaker_opened(sender, *, org_id, ai_app_id, ai_app_name="", error="", **_kwargs):
    """An AI app's circuit breaker opened: a service-down alert for that app (the AI turns
    already fail over to the next app)."""
    from apps.monitoring.alerting import alert_raise

    alert_raise(
        org=org_id,
        alert_type="service_down",
        severity="high",
        service="ai_app",
        target=str(ai_app_id),
        key="breaker",
        title=_("AI app %(name)s is failing: circuit breaker open") % {"name": ai_app_name},
        message=_("Replies fail over to the next AI app until a probe succeeds. Last error: %(e)s")
        % {"e": error or "-"},
        metadata={"ai_app_id": ai_app_id},
        source="ai_breaker",
    )


@_safe
def on_ai_app_breaker_closed(sender, *, org_id, ai_app_id, **_kwargs):
    from apps.monitoring.models import Alert

    Alert.objects.filter(
        org_id=org_id, fingerprint=_breaker_fingerprint(ai_app_id), resolved_at__isnull=True
    ).update(resolved_at=timezone.now(), resolution="auto", updated_at=timezone.now())


def connect() -> None:
    events.ai_app_breaker_opened.connect(on_ai_app_breaker_opened, dispatch_uid="mon-ai-breaker")
    events.ai_app_breaker_closed.connect(
        on_ai_app_breaker_closed, dispatch_uid="mon-ai-breaker-closed"
    )
    events.account_status_changed.connect(on_account_status_changed, dispatch_uid="mon-account")
    events.conversation_handed_off.connect(on_conversation_handed_off, dispatch_uid="mon-handoff")
    events.budget_threshold_crossed.connect(on_budget_threshold_crossed, dispatch_uid="mon-budget")
    events.alert_raised.connect(on_alert_raised, dispatch_uid="mon-alert")
