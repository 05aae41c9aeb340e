"""Domain events turned into alerts: account status changes, budget thresholds and AI usage
above its reservation."""

from __future__ import annotations

import logging

from django.utils.translation import gettext as _

from apps.core import events
from apps.monitoring import metrics
from apps.monitoring.alerting.alerts import alert_raise
from apps.monitoring.alerting.rules import AlertType, Severity

logger = logging.getLogger(__name__)


# -- domain events -> alerts ------------------------------------------------------------------

_ACCOUNT_DOWN = {"offline": Severity.HIGH, "risk_controlled": Severity.CRITICAL}
_ACCOUNT_DOWN["banned"] = Severity.CRITICAL


def on_account_status_changed(
    sender, *, org_id, account_id, from_status, to_status, reason="", **_kwargs
):
    """``service_down`` when an account goes offline / risk-controlled / banned (a deliberate
    logout is not an outage); back online, the alert resolves through the clear period."""
    try:
        severity = _ACCOUNT_DOWN.get(str(to_status))
        if severity is None:
            return
        from apps.wechat_accounts.models import WeChatAccount

        account = WeChatAccount.objects.filter(org_id=org_id, id=account_id).first()
        if account is None:
            return
        alert_raise(
            org=org_id,
            alert_type=AlertType.SERVICE_DOWN,
            severity=severity,
            service=metrics.ACCOUNT_SERVICE,
            target=f"account:{account_id}",
            title=_("WeChat account %(name)s is %(status)s")
            % {"name": account.name, "status": to_status},
            message=reason or "",
            metadata={"from_status": from_status, "to_status": to_status, "reason": reason},
            source="account",
        )
    except Exception:  # noqa: BLE001 - an alert must never break the sender's work.
        logger.exception("account status alert failed")


def on_budget_threshold_crossed(sender, *, org_id, budget_id, threshold, period, **kwargs):
    """``quota_exceeded`` (high) at 100 %; earlier thresholds are ``threshold`` alerts (medium
    at 95 %, low below). One alert per budget, threshold and period."""
    try:
        threshold = int(threshold)
        if threshold >= 100:
            alert_type, severity = AlertType.QUOTA_EXCEEDED, Severity.HIGH
            title = _("Budget exhausted")
        else:
            alert_type = AlertType.THRESHOLD
            severity = Severity.MEDIUM if threshold >= 95 else Severity.LOW
            title = _("Budget %(t)s%% used") % {"t": threshold}
        used, limit = kwargs.get("used"), kwargs.get("limit")
        alert_raise(
            org=org_id,
            alert_type=alert_type,
            severity=severity,
            service="billing",
            target=f"budget:{budget_id}",
            key=f"{threshold}:{period}",
            title=title,
            message=_("%(used)s of %(limit)s used in %(period)s.")
            % {"used": used, "limit": limit, "period": period},
            metadata={
                "budget_id": budget_id,
                "threshold": threshold,
                "period": period,
                "used": str(used),
                "limit": str(limit),
                "blocked": bool(kwargs.get("blocked")),
            },
            source="budget",
        )
    except Exception:  # noqa: BLE001
        logger.exception("budget alert failed")


def _overrun_costs(*, org, provider, model, input_tokens, output_tokens, request_id):
    """(what the provider's reported usage costs at our price, what the ledger charged); either
    None when unknown (no price for the model, no ledger row)."""
    from apps.billing import selectors as billing_selectors
    from apps.billing import services as billing

    try:
        reported = billing.cost_for(org, provider, model, input_tokens, output_tokens)
    except billing.PriceNotFound:
        reported = None
    entry = billing_selectors.ledger_get(org=org, request_id=request_id)
    return reported, (entry.cost if entry is not None else None)


# An overrun that is only our input estimate falling short by less than this share of the
# reservation is estimation noise (charged at most the reservation all the same): logged, not
# alerted. An answer longer than the reserved output (max_tokens ignored) is always alerted.
OVERRUN_ALERT_MARGIN = 0.1


def _overrun_worth_an_alert(
    *, org, request_id, reserved_tokens, reported_tokens, reported_output_tokens
) -> bool:
    from apps.billing import selectors as billing_selectors

    reservation = billing_selectors.reservation_get(org=org, request_id=request_id)
    if reservation is not None and reported_output_tokens > reservation.estimated_output_tokens:
        return True
    if reported_tokens > reserved_tokens * (1 + OVERRUN_ALERT_MARGIN):
        return True
    logger.info(
        "AI usage %s over its reservation %s by less than %d%% (request %s): not alerted",
        reported_tokens,
        reserved_tokens,
        OVERRUN_ALERT_MARGIN * 100,
        request_id,
    )
    return False


def on_ai_usage_overrun(
    sender,
    *,
    org_id,
    request_id,
    provider,
    model,
    reserved_tokens,
    reported_tokens,
    reported_input_tokens=0,
    reported_output_tokens=0,
    reserved_cost=None,
    currency="CNY",
    conversation_id=None,
    **_kwargs,
):
    """A provider reported more usage than the call reserved under a hard budget (billing
    charged only the reservation): a ``quota_exceeded`` alert (high) naming the AI app and the
    amounts, one open alert per app (repeats bump its count), unless it is only a small miss of
    the input estimate (``OVERRUN_ALERT_MARGIN``). Names, ids and amounts only: no credential
    or message text goes into it."""
    try:
        from apps.conversations.failover import ai_app_id_for_request
        from apps.core.money import format_money
        from apps.integrations.models import AIApp
        from apps.orgs.models import Organization

        org = Organization.objects.filter(id=org_id).first()
        if org is None or not _overrun_worth_an_alert(
            org=org,
            request_id=request_id,
            reserved_tokens=int(reserved_tokens or 0),
            reported_tokens=int(reported_tokens or 0),
            reported_output_tokens=int(reported_output_tokens or 0),
        ):
            return
        ai_app_id = ai_app_id_for_request(org_id=org.pk, request_id=request_id)
        ai_app = AIApp.objects.filter(org=org, id=ai_app_id).first() if ai_app_id else None
        name = ai_app.name if ai_app is not None else f"{provider}/{model}"
        reported_cost, charged_cost = _overrun_costs(
            org=org,
            provider=provider,
            model=model,
            input_tokens=int(reported_input_tokens or 0),
            output_tokens=int(reported_output_tokens or 0),
            request_id=request_id,
        )
        overrun_cost = (
            reported_cost - charged_cost
            if reported_cost is not None and charged_cost is not None
            else None
        )
        alert_raise(
            org=org,
            alert_type=AlertType.QUOTA_EXCEEDED,
            severity=Severity.HIGH,
            service="ai_app",
            target=str(ai_app.pk) if ai_app is not None else f"{provider}/{model}"[:64],
            key="usage_overrun",
            title=_("AI app “%(name)s” used more than its budget reservation") % {"name": name},
            message=_(
                "The provider reported %(reported_tokens)s tokens (%(reported_cost)s) for one "
                "answer, %(reserved_tokens)s were reserved (%(reserved_cost)s). Only "
                "%(charged_cost)s was charged to the budget; %(overrun_cost)s above it was not. "
                "Set the app's maximum answer length (max tokens) at the provider no higher "
                "than this app's."
            )
            % {
                "reported_tokens": reported_tokens,
                "reported_cost": format_money(reported_cost, currency),
                "reserved_tokens": reserved_tokens,
                "reserved_cost": format_money(reserved_cost, currency),
                "charged_cost": format_money(charged_cost, currency),
                "overrun_cost": format_money(overrun_cost, currency),
            },
            metadata={
                "ai_app_id": ai_app.pk if ai_app is not None else None,
                "request_id": request_id,
                "provider": provider,
                "model": model,
                "reserved_tokens": reserved_tokens,
                "reported_tokens": reported_tokens,
                "reserved_cost": None if reserved_cost is None else str(reserved_cost),
                "reported_cost": None if reported_cost is None else str(reported_cost),
                "charged_cost": None if charged_cost is None else str(charged_cost),
                "currency": currency,
                "conversation_id": conversation_id,
            },
            source="ai_overrun",
        )
    except Exception:  # noqa: BLE001 - an alert must never break the sender's work.
        logger.exception("AI usage overrun alert failed")


def connect_receivers() -> None:
    events.account_status_changed.connect(
        on_account_status_changed, dispatch_uid="monitoring-alert-account"
    )
    events.budget_threshold_crossed.connect(
        on_budget_threshold_crossed, dispatch_uid="monitoring-alert-budget"
    )
    events.ai_usage_overrun.connect(on_ai_usage_overrun, dispatch_uid="monitoring-alert-overrun")
