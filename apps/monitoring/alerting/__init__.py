"""Alert rules, raising / de-duplicating / resolving alerts, and rule evaluation.

Lifecycle of an alert (one open alert per ``fingerprint`` = type + service + target + key):

- ``alert_raise`` while an open alert with the fingerprint was seen within the organisation's
  ``dedupe_window_seconds`` bumps ``count`` and ``last_seen_at`` (and escalates the severity);
  an alert resolved automatically within that window is re-opened instead of creating a new
  one (a flapping condition stays one alert). Anything else creates a new alert.
- A new alert (or an escalation) sends ``apps.core.events.alert_raised`` after commit; the
  notification receiver turns it into in-app + WebSocket notifications for owners, admins and
  managers. High and critical alerts go out as *urgent* notifications (e-mail, the configured
  SMS numbers and every active robot webhook) unless the organisation switched
  ``notify_email`` off; medium ones as warnings, low ones as info (robots forward by their own
  minimum type). Every change pushes ``alert_update`` to the monitor WebSocket group.
- Conditions evaluated every tick (rules, failing checks, anomalies, offline accounts) call
  ``alert_condition_clear`` when they no longer hold: the alert resolves automatically once the
  condition has stayed clear for ``auto_resolve_seconds``. Event alerts (quota) resolve by hand.

Anomaly statistic (``anomaly_evaluate``): for spend (ledger cost) and message volume
(conversation messages), x = the total of the last 60 minutes, and the baseline is the 168
hourly totals of the 7 days before that hour (hours without rows count as 0). With mean μ and
population standard deviation σ of the baseline, z = (x − μ) / max(σ, 0.1·μ, ε), the floor
keeping a perfectly flat baseline from turning any change into an infinite score. An anomaly
(severity medium) fires when z ≥ ``anomaly_z_threshold`` (default 3.0, roughly "above 99.9 %
of a normal baseline") and the organisation has at least ``anomaly_min_hours`` of history.
"""

from apps.monitoring.alerting.alerts import (
    alert_condition_clear,
    alert_payload,
    alert_raise,
    alert_resolve,
    fingerprint_for,
)
from apps.monitoring.alerting.evaluation import (
    accounts_evaluate,
    anomaly_evaluate,
    anomaly_score,
    checks_evaluate,
    evaluate_org,
    rules_evaluate,
)
from apps.monitoring.alerting.receivers import (
    connect_receivers,
    on_account_status_changed,
    on_budget_threshold_crossed,
)
from apps.monitoring.alerting.retention import (
    cost_today,
    retention_clean_all_orgs,
)
from apps.monitoring.alerting.rules import (
    CONFIG_FIELDS,
    EVALUATED_SOURCES,
    AlertType,
    Severity,
    config_get,
    config_update,
    monitoring_set_enabled,
    rule_severity,
    rule_upsert,
    rules_effective,
    rules_ensure_defaults,
)

__all__ = [
    "AlertType",
    "CONFIG_FIELDS",
    "EVALUATED_SOURCES",
    "Severity",
    "accounts_evaluate",
    "alert_condition_clear",
    "alert_payload",
    "alert_raise",
    "alert_resolve",
    "anomaly_evaluate",
    "anomaly_score",
    "checks_evaluate",
    "config_get",
    "config_update",
    "connect_receivers",
    "cost_today",
    "evaluate_org",
    "fingerprint_for",
    "monitoring_set_enabled",
    "on_account_status_changed",
    "on_budget_threshold_crossed",
    "retention_clean_all_orgs",
    "rule_severity",
    "rule_upsert",
    "rules_effective",
    "rules_ensure_defaults",
    "rules_evaluate",
]
