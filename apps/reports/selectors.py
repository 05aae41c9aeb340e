"""Reads of the reports app: every figure of every report, from the derived tables only.

Counters are sums of ``DailyStat`` rows; percentiles come from ``ConversationCycle`` rows
(``percentile_cont`` on PostgreSQL, the same linear interpolation in Python elsewhere). Live
figures ("still waiting", "assigned open conversations now") read the current state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from django.db import connection, transaction
from django.db.models import Aggregate, Count, FloatField, Q, QuerySet, Sum

from apps.orgs.models import Organization
from apps.reports.compute import ALL
from apps.reports.models import (
    COUNTERS,
    HANDOFF_REASONS,
    MONEY,
    ConversationCycle,
    DailyStat,
    SopStepDaily,
)

CLOCKS = {
    "first_ai_response": "first_ai_seconds",
    "first_human_response": "first_human_seconds",
    "handoff_wait": "handoff_wait_seconds",
    "resolution": "resolution_seconds",
}
PERCENTILES = (0.5, 0.9)
CENT = Decimal("0.01")
MILLICENT = Decimal("0.0001")


@dataclass(frozen=True)
class ReportFilter:
    """What a report covers: the organisation, local days ``start``..``end`` (inclusive) and
    optional dimensions. ``agent_id`` is forced to the caller's own id for agents."""

    org: Organization
    start: dt.date
    end: dt.date
    account_id: int | None = None
    agent_id: int | None = None
    ai_app_id: int | None = None
    label_id: int | None = None
    extra: dict = field(default_factory=dict)

    def dims(self) -> dict:
        out = {}
        for name in ("account_id", "agent_id", "ai_app_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


# -- money and percentiles -------------------------------------------------------------------


def money(value, places: Decimal = CENT) -> str:
    return str(Decimal(value or 0).quantize(places, rounding=ROUND_HALF_UP))


def ratio(numerator, denominator, places: Decimal = CENT) -> str | None:
    if not denominator:
        return None
    return money(Decimal(numerator or 0) / Decimal(denominator), places)


class PercentileConts(Aggregate):
    """PostgreSQL ``percentile_cont(ARRAY[...]) WITHIN GROUP (ORDER BY x)``: every percentile
    of a column from one sort (NULLs ignored)."""

    function = "percentile_cont"
    template = "%(function)s(ARRAY[%(percentiles)s]) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, percentiles=PERCENTILES, **extra):
        from django.contrib.postgres.fields import ArrayField

        super().__init__(
            expression,
            percentiles=", ".join(f"{float(p)}::float8" for p in percentiles),
            output_field=ArrayField(FloatField()),
            **extra,
        )


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's ``percentile_cont``)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    rank = p * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


COUNTS = {
    "started": Q(),
    "fully_automated": Q(ai_messages__gt=0, human_messages=0, handoffs=0),
    "answered_by_ai": Q(ai_messages__gt=0),
    "handled": Q(human_messages__gt=0),
    "still_waiting": Q(waiting_since__isnull=False),
}


def cycle_summary(qs: QuerySet, group_by: str | None = None, clocks=tuple(CLOCKS)) -> dict:
    """Counts (``COUNTS``) and p50/p90 of the ``clocks`` of the cycles in ``qs``, overall or
    per ``group_by`` value: one query (one sort per clock) on PostgreSQL."""
    if connection.vendor == "postgresql":
        aggregates = {
            f"n__{name}": Count("id", filter=q) if q else Count("id") for name, q in COUNTS.items()
        }
        for name, column in CLOCKS.items():
            if name not in clocks:
                continue
            aggregates[f"{name}__count"] = Count(column)
            aggregates[f"{name}__ps"] = PercentileConts(column)
        with transaction.atomic(), connection.cursor() as cursor:
            # One in-memory sort per clock instead of a spill to disk (the default is 4 MB).
            cursor.execute("SET LOCAL work_mem = '64MB'")
            if group_by is None:
                return _shape(qs.order_by().aggregate(**aggregates))
            rows = list(qs.order_by().values(group_by).annotate(**aggregates))
        return {row[group_by]: _shape(row) for row in rows}
    fields = ["ai_messages", "human_messages", "handoffs", "waiting_since", *CLOCKS.values()]
    grouped: dict = defaultdict(list)
    for row in qs.order_by().values(*([group_by] if group_by else []), *fields):
        grouped[row[group_by] if group_by else None].append(row)
    result = {key: _shape_python(rows) for key, rows in grouped.items()}
    if group_by is None:
        return result.get(None) or _shape({})
    return result


def _shape_python(rows: list[dict]) -> dict:
    flat = {
        "n__started": len(rows),
        "n__fully_automated": sum(
            1 for r in rows if r["ai_messages"] and not r["human_messages"] and not r["handoffs"]
        ),
        "n__answered_by_ai": sum(1 for r in rows if r["ai_messages"]),
        "n__handled": sum(1 for r in rows if r["human_messages"]),
        "n__still_waiting": sum(1 for r in rows if r["waiting_since"] is not None),
    }
    for name, column in CLOCKS.items():
        values = [r[column] for r in rows if r[column] is not None]
        flat[f"{name}__count"] = len(values)
        flat[f"{name}__ps"] = [percentile(values, p) for p in PERCENTILES] if values else None
    return _shape(flat)


def _shape(flat: dict) -> dict:
    out: dict = {name: flat.get(f"n__{name}") or 0 for name in COUNTS}
    for name in CLOCKS:
        values = flat.get(f"{name}__ps") or [None] * len(PERCENTILES)
        out[name] = {
            "count": flat.get(f"{name}__count") or 0,
            **{f"p{int(p * 100)}": _rounded(v) for p, v in zip(PERCENTILES, values, strict=True)},
        }
    return out


# -- querysets -------------------------------------------------------------------------------


def daily_stats(f: ReportFilter, group_by: str | None = None) -> QuerySet:
    """The ``DailyStat`` rows answering ``f`` (and a grouping by one dimension): the roll-up
    rows when at most one dimension is filtered or grouped, else the full combinations."""
    given = f.dims()
    needed = set(given) | ({group_by} if group_by else set())
    lookups: dict = {}
    for dim in ("account_id", "agent_id", "ai_app_id"):
        if dim in given:
            lookups[dim] = given[dim]
        elif len(needed) <= 1 and dim not in needed:
            lookups[dim] = ALL
        else:
            lookups[f"{dim}__gte"] = 0
    return DailyStat.objects.filter(
        org=f.org, day__gte=f.start, day__lte=f.end, label_id=f.label_id or 0, **lookups
    )


def cycles(f: ReportFilter) -> QuerySet:
    qs = ConversationCycle.objects.filter(org=f.org, day__gte=f.start, day__lte=f.end, **f.dims())
    if f.label_id:
        qs = qs.filter(conversation__labels__id=f.label_id)
    return qs


_SUMS = {name: Sum(name) for name in [*COUNTERS, *MONEY]}


def _zero(name: str):
    return Decimal(0) if name in MONEY else 0


def _days(f: ReportFilter) -> tuple[dict, list[dict]]:
    """Totals and the per-day series (every day of the range) in one query."""
    rows = {row["day"]: row for row in daily_stats(f).order_by().values("day").annotate(**_SUMS)}
    totals = {name: _zero(name) for name in _SUMS}
    series = []
    day = f.start
    while day <= f.end:
        row = rows.get(day, {})
        values = {name: row.get(name) or _zero(name) for name in _SUMS}
        for name, value in values.items():
            totals[name] += value
        series.append({"day": day, **values})
        day += dt.timedelta(days=1)
    return totals, series


def _pick(series: list[dict], fields: list[str]) -> list[dict]:
    return [{"day": row["day"], **{k: row[k] for k in fields}} for row in series]


# -- reports ---------------------------------------------------------------------------------


def _handoffs(totals: dict) -> dict:
    return {
        **{reason: totals[f"handoffs_{reason}"] for reason in HANDOFF_REASONS},
        "other": totals["handoffs_other"],
    }


def _cost_block(totals: dict, conversations: int) -> dict:
    total = totals["ai_cost"] + totals["platform_cost"]
    return {
        "ai_cost": money(totals["ai_cost"]),
        "platform_cost": money(totals["platform_cost"]),
        "total_cost": money(total),
        "cost_per_conversation": ratio(total, conversations),
        "cost_per_ai_answer": ratio(
            totals["ai_cost_answers"], totals["ai_turns_answered"], MILLICENT
        ),
    }


def overview_report(f: ReportFilter) -> dict:
    totals, series = _days(f)
    clocks = cycle_summary(
        cycles(f), clocks=("first_ai_response", "first_human_response", "handoff_wait")
    )
    return {
        "summary": {
            "inbound_messages": totals["inbound_messages"],
            "conversations_started": totals["conversations_started"],
            "conversations_resolved": totals["conversations_resolved"],
            "ai_messages": totals["ai_messages"],
            "fully_automated": clocks["fully_automated"],
            "handoffs": totals["handoffs"],
            "still_waiting": clocks["still_waiting"],
            "first_ai_response_p50": clocks["first_ai_response"]["p50"],
            "first_human_response_p50": clocks["first_human_response"]["p50"],
            "handoff_wait_p50": clocks["handoff_wait"]["p50"],
            "handoff_wait_p90": clocks["handoff_wait"]["p90"],
            **_cost_block(totals, totals["conversations_started"]),
        },
        "series": _pick(
            series,
            [
                "inbound_messages",
                "ai_messages",
                "agent_messages",
                "handoffs",
                "conversations_resolved",
            ],
        ),
    }


def conversations_report(f: ReportFilter) -> dict:
    totals, series = _days(f)
    counts = cycle_summary(cycles(f))
    return {
        "summary": {
            "inbound_messages": totals["inbound_messages"],
            "conversations_started": totals["conversations_started"],
            "conversations_resolved": totals["conversations_resolved"],
            "ai_turns": totals["ai_turns"],
            "ai_turns_answered": totals["ai_turns_answered"],
            "ai_messages": totals["ai_messages"],
            "answered_by_ai": counts["answered_by_ai"],
            "fully_automated": counts["fully_automated"],
            "ai_failures": totals["ai_failures"],
            "handoffs": totals["handoffs"],
            "still_waiting": counts["still_waiting"],
            "drafts_sent": totals["drafts_sent"],
            "drafts_edited": totals["drafts_edited"],
            "drafts_discarded": totals["drafts_discarded"],
        },
        "handoffs_by_reason": _handoffs(totals),
        "speed": {name: counts[name] for name in CLOCKS},
        "series": _pick(
            series,
            [
                "inbound_messages",
                "conversations_started",
                "conversations_resolved",
                "ai_messages",
                "handoffs",
            ],
        ),
    }


def _names(model, ids, attr: str) -> dict[int, str]:
    ids = [i for i in ids if i]
    if not ids:
        return {}
    return {obj.pk: str(getattr(obj, attr) or obj) for obj in model.objects.filter(pk__in=ids)}


def user_names(ids) -> dict[int, str]:
    from apps.accounts.models import User

    return {
        u.pk: (u.name or u.email)
        for u in User.objects.filter(pk__in=[i for i in ids if i]).only("id", "name", "email")
    }


def agents_report(f: ReportFilter) -> dict:
    """One row per agent: only the org's members (agents and above), plus anyone with figures."""
    from apps.conversations.models import Conversation
    from apps.orgs.models import Membership, Role

    stats = {
        row["agent_id"]: row
        for row in daily_stats(f, group_by="agent_id")
        .order_by()
        .values("agent_id")
        .annotate(
            agent_messages=Sum("agent_messages"),
            phone_messages=Sum("phone_messages"),
            handoffs=Sum("handoffs"),
            ai_cost=Sum("ai_cost"),
            platform_cost=Sum("platform_cost"),
            drafts_sent=Sum("drafts_sent"),
            drafts_edited=Sum("drafts_edited"),
            drafts_discarded=Sum("drafts_discarded"),
        )
    }
    # Only cycles a person answered carry an agent's clocks (and count as handled by them).
    clocks = cycle_summary(
        cycles(f).filter(first_human_seconds__isnull=False),
        group_by="agent_id",
        clocks=("first_human_response", "handoff_wait"),
    )
    handled = {agent_id: c["handled"] for agent_id, c in clocks.items() if c["handled"]}
    open_now = Conversation.objects.filter(
        org=f.org,
        status__in=[Conversation.Status.OPEN, Conversation.Status.PENDING],
        assignee__isnull=False,
    )
    if f.agent_id is not None:
        open_now = open_now.filter(assignee_id=f.agent_id)
    if f.account_id is not None:
        open_now = open_now.filter(account_id=f.account_id)
    assigned = {
        row["assignee_id"]: row["n"]
        for row in open_now.order_by().values("assignee_id").annotate(n=Count("id"))
    }
    members = Membership.objects.filter(
        org=f.org, role__in=[Role.OWNER, Role.ADMIN, Role.MANAGER, Role.AGENT]
    )
    if f.agent_id is not None:
        members = members.filter(user_id=f.agent_id)
    ids = set(members.values_list("user_id", flat=True))
    ids |= {i for i in [*stats, *handled, *assigned] if i}
    if f.agent_id is not None:
        ids &= {f.agent_id}
    names = user_names(ids)
    empty = _shape({})
    rows = []
    for agent_id in sorted(ids, key=lambda i: names.get(i, "")):
        s = stats.get(agent_id, {})
        c = clocks.get(agent_id, empty)
        rows.append(
            {
                "agent_id": agent_id,
                "agent": names.get(agent_id, ""),
                "conversations_handled": handled.get(agent_id, 0),
                "messages_sent": (s.get("agent_messages") or 0) + (s.get("phone_messages") or 0),
                "first_response_p50": c["first_human_response"]["p50"],
                "first_response_p90": c["first_human_response"]["p90"],
                "handoff_wait_p50": c["handoff_wait"]["p50"],
                "handoff_wait_p90": c["handoff_wait"]["p90"],
                "handoffs": s.get("handoffs") or 0,
                "assigned_open": assigned.get(agent_id, 0),
                "drafts_sent": s.get("drafts_sent") or 0,
                "drafts_edited": s.get("drafts_edited") or 0,
                "drafts_discarded": s.get("drafts_discarded") or 0,
                "cost": money((s.get("ai_cost") or 0) + (s.get("platform_cost") or 0)),
            }
        )
    return {"rows": rows}


def accounts_report(f: ReportFilter) -> dict:
    from apps.wechat_accounts.models import WeChatAccount

    stats = {
        row["account_id"]: row
        for row in daily_stats(f, group_by="account_id")
        .order_by()
        .values("account_id")
        .annotate(
            **{
                k: Sum(k)
                for k in [
                    "inbound_messages",
                    "outbound_messages",
                    "ai_messages",
                    "agent_messages",
                    "sop_messages",
                    "outbound_failed",
                    "delivery_unknown",
                    "handoffs",
                    "offline_seconds",
                    "rate_limit_deferrals",
                    "ai_cost",
                    "platform_cost",
                ]
            }
        )
    }
    accounts = WeChatAccount.objects.filter(org=f.org)
    if f.account_id is not None:
        accounts = accounts.filter(pk=f.account_id)
    names = dict(accounts.values_list("id", "name"))
    if f.agent_id is not None or f.ai_app_id is not None or f.label_id:
        names = {k: v for k, v in names.items() if k in stats}
    rows = []
    for account_id, name in sorted(names.items(), key=lambda kv: kv[1]):
        s = stats.get(account_id, {})
        rows.append(
            {
                "account_id": account_id,
                "account": name,
                "messages_in": s.get("inbound_messages") or 0,
                "messages_out": s.get("outbound_messages") or 0,
                "ai_messages": s.get("ai_messages") or 0,
                "agent_messages": s.get("agent_messages") or 0,
                "sop_messages": s.get("sop_messages") or 0,
                "send_failures": s.get("outbound_failed") or 0,
                "delivery_unknown": s.get("delivery_unknown") or 0,
                "handoffs": s.get("handoffs") or 0,
                "offline_hours": round((s.get("offline_seconds") or 0) / 3600, 2),
                "rate_limit_deferrals": s.get("rate_limit_deferrals") or 0,
                "cost": money((s.get("ai_cost") or 0) + (s.get("platform_cost") or 0)),
            }
        )
    return {"rows": rows}


def sop_report(f: ReportFilter) -> dict:
    """Deliveries per plan step (due in the range) and the reply rate within 24 h."""
    from apps.sop.models import SopPlan, SopStep

    qs = SopStepDaily.objects.filter(org=f.org, day__gte=f.start, day__lte=f.end)
    if f.account_id is not None:
        qs = qs.filter(account_id=f.account_id)
    if f.extra.get("account_ids") is not None:
        qs = qs.filter(account_id__in=f.extra["account_ids"])
    grouped = (
        qs.order_by()
        .values("plan_id", "step_id")
        .annotate(
            sent=Sum("sent"), failed=Sum("failed"), skipped=Sum("skipped"), replied=Sum("replied")
        )
    )
    plans = dict(SopPlan.objects.filter(org=f.org).values_list("id", "name"))
    steps = {
        s.pk: s for s in SopStep.objects.filter(org=f.org, id__in=[g["step_id"] for g in grouped])
    }
    rows = []
    for g in grouped:
        step = steps.get(g["step_id"])
        rows.append(
            {
                "plan_id": g["plan_id"],
                "plan": plans.get(g["plan_id"], ""),
                "step_id": g["step_id"],
                "step": step_label(step),
                "position": getattr(step, "order", 0) or 0,
                "sent": g["sent"] or 0,
                "failed": g["failed"] or 0,
                "skipped": g["skipped"] or 0,
                "replied": g["replied"] or 0,
                "reply_rate": round((g["replied"] or 0) / g["sent"], 4) if g["sent"] else None,
            }
        )
    rows.sort(key=lambda r: (r["plan"], r["position"], r["step_id"]))
    totals = {k: sum(r[k] for r in rows) for k in ("sent", "failed", "skipped", "replied")}
    totals["reply_rate"] = round(totals["replied"] / totals["sent"], 4) if totals["sent"] else None
    return {"summary": totals, "rows": rows}


def step_label(step) -> str:
    if step is None:
        return ""
    text = (getattr(step, "text", "") or getattr(step, "title", "") or "").strip()
    position = getattr(step, "order", None)
    prefix = f"#{position} " if position is not None else ""
    return (prefix + text[:40]).strip()


def cost_report(f: ReportFilter) -> dict:
    from apps.integrations.models import AIApp

    totals, days = _days(f)
    by = {}
    for dim in ("account_id", "agent_id", "ai_app_id"):
        by[dim] = list(
            daily_stats(f, group_by=dim)
            .order_by()
            .values(dim)
            .annotate(
                ai_cost=Sum("ai_cost"),
                platform_cost=Sum("platform_cost"),
                ai_cost_answers=Sum("ai_cost_answers"),
                ai_turns_answered=Sum("ai_turns_answered"),
                conversations=Sum("conversations_started"),
            )
        )
    from apps.wechat_accounts.models import WeChatAccount

    account_names = dict(
        WeChatAccount.objects.filter(
            org=f.org, id__in=[r["account_id"] for r in by["account_id"]]
        ).values_list("id", "name")
    )
    app_names = dict(
        AIApp.objects.filter(
            org=f.org, id__in=[r["ai_app_id"] for r in by["ai_app_id"]]
        ).values_list("id", "name")
    )
    agent_names = user_names(r["agent_id"] for r in by["agent_id"])

    def shape(rows, key, names, label):
        out = []
        for r in rows:
            if not (r["ai_cost"] or r["platform_cost"]):
                continue
            total = (r["ai_cost"] or 0) + (r["platform_cost"] or 0)
            out.append(
                {
                    key: r[key] or None,
                    label: names.get(r[key], "") if r[key] else "",
                    "ai_cost": money(r["ai_cost"]),
                    "platform_cost": money(r["platform_cost"]),
                    "total_cost": money(total),
                    "cost_per_conversation": ratio(total, r["conversations"]),
                    "cost_per_ai_answer": ratio(
                        r["ai_cost_answers"], r["ai_turns_answered"], MILLICENT
                    ),
                }
            )
        out.sort(key=lambda row: -Decimal(row["total_cost"]))
        return out

    series = [
        {
            "day": row["day"],
            "ai_cost": money(row["ai_cost"]),
            "platform_cost": money(row["platform_cost"]),
        }
        for row in days
    ]
    return {
        "summary": _cost_block(totals, totals["conversations_started"]),
        "series": series,
        "by_account": shape(by["account_id"], "account_id", account_names, "account"),
        "by_agent": shape(by["agent_id"], "agent_id", agent_names, "agent"),
        "by_ai_app": shape(by["ai_app_id"], "ai_app_id", app_names, "ai_app"),
    }


_CODE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def report(name: str, f: ReportFilter) -> dict:
    """``REPORTS[name](f)``, cached in Redis until the organisation's figures next change (the
    refresh bumps a version; ``REPORTS_CACHE_SECONDS`` 0 turns the cache off)."""
    import logging
    import pickle

    from django.conf import settings

    from apps.core.redis import get_redis, redis_key

    ttl = settings.REPORTS_CACHE_SECONDS
    if not ttl:
        return REPORTS[name](f)
    signature = repr(
        (
            name,
            f.start,
            f.end,
            f.account_id,
            f.agent_id,
            f.ai_app_id,
            f.label_id,
            sorted(f.extra.items()),
        )
    )
    # The code's fingerprint is part of the key: after a deploy that changes a report's shape
    # nobody is served a result computed by the old code.
    digest = hashlib.sha256(f"{_CODE}:{signature}".encode()).hexdigest()[:32]
    try:
        client = get_redis()
        version = int(client.get(redis_key("reports", "version", f.org.pk)) or 0)
        key = redis_key("reports", "cache", f.org.pk, version, digest)
        cached = client.get(key)
        if cached is not None:
            return pickle.loads(cached)  # noqa: S301 - our own rows, in our own Redis
    except Exception:  # noqa: BLE001 - a cache failure must never fail a report
        logging.getLogger(__name__).warning("reports: cache unavailable", exc_info=True)
        return REPORTS[name](f)
    data = REPORTS[name](f)
    try:
        client.set(key, pickle.dumps(data), ex=ttl)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).warning("reports: cache unavailable", exc_info=True)
    return data


REPORTS = {
    "overview": overview_report,
    "conversations": conversations_report,
    "agents": agents_report,
    "accounts": accounts_report,
    "sop": sop_report,
    "cost": cost_report,
}


# -- who may see what ------------------------------------------------------------------------


def report_filter_build(
    *,
    org: Organization,
    role: str,
    user_id: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
    account: int | None = None,
    agent: int | None = None,
    ai_app: int | None = None,
    label: int | None = None,
) -> ReportFilter:
    """The filter of one report request. Agents only ever get their own figures (any other
    ``agent`` is replaced by their own id; SOP figures of the accounts they own); managers and
    above, and viewers (everything read-only), the organisation's. Ids of another organisation are
    refused like unknown ones."""
    from django.utils import timezone
    from django.utils.translation import gettext as _

    from apps.conversations.models import Label
    from apps.core.exceptions import ApplicationError
    from apps.integrations.models import AIApp
    from apps.orgs.models import Membership, Role
    from apps.reports.services import local_day
    from apps.wechat_accounts.models import WeChatAccount

    errors = {}
    checks = (
        ("account", account, WeChatAccount.objects.filter(org=org, pk=account)),
        ("ai_app", ai_app, AIApp.objects.filter(org=org, pk=ai_app)),
        ("label", label, Label.objects.filter(org=org, pk=label)),
        ("agent", agent, Membership.objects.filter(org=org, user_id=agent)),
    )
    for name, value, qs in checks:
        if value is not None and not qs.exists():
            errors[name] = [_("Unknown in this organisation.")]
    if errors:
        raise ApplicationError(_("Invalid data."), fields=errors)
    end = end or local_day(org, timezone.now())
    start = start or end - dt.timedelta(days=29)
    extra = {}
    if role == Role.AGENT:
        agent = user_id
        extra["account_ids"] = list(
            WeChatAccount.objects.filter(org=org, owner_id=user_id).values_list("id", flat=True)
        )
    return ReportFilter(
        org=org,
        start=start,
        end=end,
        account_id=account,
        agent_id=agent,
        ai_app_id=ai_app,
        label_id=label,
        extra=extra,
    )


def filter_options(f: ReportFilter, *, own_only: bool) -> dict:
    """Names for the filter pickers of the admin page."""
    from apps.conversations.models import Label
    from apps.integrations.models import AIApp
    from apps.orgs.models import Membership, Role
    from apps.wechat_accounts.models import WeChatAccount

    members = Membership.objects.filter(
        org=f.org, role__in=[Role.OWNER, Role.ADMIN, Role.MANAGER, Role.AGENT]
    )
    if own_only:
        members = members.filter(user_id=f.agent_id)
    agent_names = user_names(members.values_list("user_id", flat=True))
    return {
        "accounts": list(
            WeChatAccount.objects.filter(org=f.org).order_by("name").values_list("id", "name")
        ),
        "agents": sorted(agent_names.items(), key=lambda kv: kv[1]),
        "ai_apps": list(AIApp.objects.filter(org=f.org).order_by("name").values_list("id", "name")),
        "labels": list(Label.objects.filter(org=f.org).order_by("name").values_list("id", "name")),
    }


def dashboard_block(*, org: Organization, user_id: int, role: str, days: int = 7) -> dict | None:
    """The home dashboard's reports card: the last ``days`` days (agents: their own figures;
    everyone else: the organisation's)."""
    from django.urls import reverse

    from apps.orgs.models import Role
    from apps.reports.formatting import duration

    f = report_filter_build(org=org, role=role, user_id=user_id)
    f = ReportFilter(
        org=f.org,
        start=f.end - dt.timedelta(days=days - 1),
        end=f.end,
        agent_id=f.agent_id,
        extra=f.extra,
    )
    data = report("overview", f)["summary"]
    started = data["conversations_started"]
    return {
        "days": days,
        "inbound_messages": data["inbound_messages"],
        "conversations_started": started,
        "fully_automated_percent": round(100 * data["fully_automated"] / started)
        if started
        else None,
        "handoffs": data["handoffs"],
        "handoff_wait_p50": data["handoff_wait_p50"],
        "handoff_wait_text": duration(data["handoff_wait_p50"]),
        "total_cost": data["total_cost"],
        "own_only": role == Role.AGENT,
        "link": reverse("admin:reports_dailystat_changelist") + f"?span={days}",
    }
