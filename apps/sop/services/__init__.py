"""Writes of the sop app: plans and steps, activation and the plan's life cycle, runs and
enrolments (expansion into deliveries), the tick that hands due deliveries to the outbound
pipeline, dry runs and estimates.

Functions other apps call:

- ``sop_tick(*, org_id, now=None) -> TickResult``: one pass of the scheduler for one org.
- ``sop_run_start(*, org_id, plan_id, at=None) -> SopRun | None``: a once / recurring occurrence.
- ``contact_added(*, org_id, contact_id)`` / ``tag_applied(*, org_id, contact_id, tag_id)``:
  relative triggers (wired to ``apps.core.events`` in ``apps.sop.receivers``).

Exactly once: each (plan, contact, step, occurrence) has one ``SopDelivery`` row (unique). The
tick claims due rows (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL plus a conditional
``scheduled -> processing`` update with a claim token, which alone suffices on SQLite), and moves
``processing -> queued`` in the same transaction that creates the pipeline's Message, whose
idempotency key is the delivery id. A crashed worker's claim expires and is retried; the key
makes the retry return the same Message.
"""

from apps.sop.services._common import (
    ENROL,
    ONCE,
    PENDING,
    R_BLOCKED,
    R_CANCELLED,
    R_CONDITION,
    R_HANDOFF,
    R_MOVED,
    R_NO_MATCH,
    R_REMOVED,
    R_REPLIED,
    R_STEP_REMOVED,
    R_STOP_DATE,
    R_STOP_TAG,
    RUN_START_TASK,
    Status,
    TickResult,
    contact_variables,
    next_fire_times,
    quiet_end,
    step_due_at,
)
from apps.sop.services.delivery import _send
from apps.sop.services.lifecycle import (
    plan_activate,
    plan_cancel,
    plan_pause,
    plan_resume,
)
from apps.sop.services.plans import (
    M2M_FIELDS,
    PLAN_FIELDS,
    STEP_FIELDS,
    plan_create,
    plan_delete,
    plan_reschedule,
    plan_update,
)
from apps.sop.services.reports import (
    CSV_COLUMNS,
    deliveries_csv,
    orgs_with_due_deliveries,
    plan_dry_run,
    plan_estimate,
)
from apps.sop.services.runs import (
    contact_added,
    enrol_contact,
    sop_run_start,
    tag_applied,
)
from apps.sop.services.tick import (
    claim_due,
    process_delivery,
    sop_tick,
)

__all__ = [
    "CSV_COLUMNS",
    "ENROL",
    "M2M_FIELDS",
    "ONCE",
    "PENDING",
    "PLAN_FIELDS",
    "RUN_START_TASK",
    "R_BLOCKED",
    "R_CANCELLED",
    "R_CONDITION",
    "R_HANDOFF",
    "R_MOVED",
    "R_NO_MATCH",
    "R_REMOVED",
    "R_REPLIED",
    "R_STEP_REMOVED",
    "R_STOP_DATE",
    "R_STOP_TAG",
    "STEP_FIELDS",
    "Status",
    "TickResult",
    "_send",
    "claim_due",
    "contact_added",
    "contact_variables",
    "deliveries_csv",
    "enrol_contact",
    "next_fire_times",
    "orgs_with_due_deliveries",
    "plan_activate",
    "plan_cancel",
    "plan_create",
    "plan_delete",
    "plan_dry_run",
    "plan_estimate",
    "plan_pause",
    "plan_reschedule",
    "plan_resume",
    "plan_update",
    "process_delivery",
    "quiet_end",
    "sop_run_start",
    "sop_tick",
    "step_due_at",
    "tag_applied",
]
