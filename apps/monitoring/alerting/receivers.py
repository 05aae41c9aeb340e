"""Domain events turned into alerts: account status changes and budget thresholds."""

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


def connect_receivers() -> None:
    events.account_status_changed.connect(
        on_account_status_changed, dispatch_uid="monitoring-alert-account"
    )
    events.budget_threshold_crossed.connect(
        on_budget_threshold_crossed, dispatch_uid="monitoring-alert-budget"
    )
