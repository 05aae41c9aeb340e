"""The computations of the reports: every figure from the raw rows (no writes elsewhere).

- ``cycles_refresh(org=, conversation_ids=)``: the ``ConversationCycle`` rows of conversations,
  from their messages and ``ConversationEvent`` rows (all of each conversation's history).
- ``day_refresh(org=, day=)``: the ``DailyStat`` and ``SopStepDaily`` rows of one local day.

``apps.reports.services`` decides *what* to recompute (incrementally or a whole range).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from apps.orgs.models import Organization
from apps.reports.models import (
    COUNTERS,
    HANDOFF_REASONS,
    MONEY,
    ConversationCycle,
    ConversationEvent,
    DailyStat,
    SopStepDaily,
)

HOUR = 3600
CUSTOMER = "customer"
AI = "ai"
AGENT = "agent"
PHONE = "phone"
SOP = "sop"
HUMAN_KINDS = (AGENT, PHONE)
# A phone reply re-arms the AI pause on every message: the handoff is one until it expires.
PHONE_REASON = "phone_reply"
# The "any value" of a dimension in the roll-up rows of DailyStat.
ALL = -1
# An agent's reply switches the chat to a person a moment after the message is stored.
TAKEOVER_GRACE = dt.timedelta(seconds=30)


# -- time ------------------------------------------------------------------------------------


def day_bounds(org: Organization, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants of the local midnight starting ``day`` and the next one."""
    tz = org.tzinfo
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_day(org: Organization, at: dt.datetime) -> dt.date:
    return at.astimezone(org.tzinfo).date()


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


# -- dimensions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dims:
    account_id: int
    assignee_id: int
    ai_app_id: int
    owner_id: int
    labels: tuple[int, ...]
    mode: str
    contact_id: int


def conversation_dims(conversation_ids: Iterable[int]) -> dict[int, Dims]:
    """Account, assignee, effective AI app (the conversation's, else the account's default),
    the account owner and the labels of each conversation."""
    from apps.conversations.models import Conversation

    ids = list(set(conversation_ids))
    if not ids:
        return {}
    labels: dict[int, list[int]] = defaultdict(list)
    through = Conversation.labels.through
    for chunk in chunks(ids):
        for conversation_id, label_id in through.objects.filter(
            conversation_id__in=chunk
        ).values_list("conversation_id", "label_id"):
            labels[conversation_id].append(label_id)
    dims = {}
    for chunk in chunks(ids):
        rows = Conversation.objects.filter(id__in=chunk).values_list(
            "id",
            "account_id",
            "assignee_id",
            "ai_app_id",
            "account__default_ai_app_id",
            "account__owner_id",
            "mode",
            "contact_id",
        )
        for cid, account_id, assignee_id, app_id, default_app_id, owner_id, mode, contact in rows:
            dims[cid] = Dims(
                account_id=account_id or 0,
                assignee_id=assignee_id or 0,
                ai_app_id=app_id or default_app_id or 0,
                owner_id=owner_id or 0,
                labels=tuple(sorted(labels.get(cid, ()))),
                mode=mode,
                contact_id=contact or 0,
            )
    return dims


def chunks(ids: list[int], size: int = 5000):
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _human_agent(dims: Dims, sender_kind: str, sender_user_id: int | None) -> int:
    """Who a person's message counts for: the agent who sent it; a reply typed on the phone
    counts for the account's owner (it is their phone)."""
    if sender_kind == AGENT and sender_user_id:
        return sender_user_id
    if sender_kind == PHONE and dims.owner_id:
        return dims.owner_id
    return dims.assignee_id


# -- cycles ----------------------------------------------------------------------------------


def _compute_cycles(org: Organization, dims: Dims, messages, events) -> list[ConversationCycle]:
    """Walk one conversation's messages and events in time order (the README defines each
    clock); returns unsaved rows."""
    timeline = [(m[1], 0, m) for m in messages] + [(e[2], 1, e) for e in events]
    timeline.sort(key=lambda item: (item[0], item[1]))
    cycles: list[ConversationCycle] = []
    current: dict | None = None

    def close(cycle: dict) -> None:
        start = cycle["started_at"]
        agent = cycle["agent_id"] or dims.assignee_id
        wait = None
        if cycle["wait_started_at"] is not None and cycle["wait_answered_at"] is not None:
            wait = (cycle["wait_answered_at"] - cycle["wait_started_at"]).total_seconds()
        resolved = cycle["resolved_at"]
        cycles.append(
            ConversationCycle(
                org_id=org.pk,
                conversation_id=cycle["conversation_id"],
                started_at=start,
                day=local_day(org, start),
                account_id=dims.account_id,
                agent_id=agent,
                ai_app_id=dims.ai_app_id,
                first_ai_seconds=_secs(start, cycle["first_ai_at"]),
                first_human_seconds=_secs(start, cycle["first_human_at"]),
                handoffs=cycle["handoffs"],
                handoff_wait_seconds=max(wait, 0.0) if wait is not None else None,
                waiting_since=cycle["waiting_since"],
                resolved_at=resolved,
                resolution_seconds=_secs(start, resolved),
                ai_messages=cycle["ai_messages"],
                human_messages=cycle["human_messages"],
            )
        )

    for at, is_event, item in timeline:
        if not is_event:
            _id, _at, conversation_id, direction, sender_kind, sender_user_id = item
            if sender_kind == CUSTOMER:
                if current is None:
                    current = _new_cycle(conversation_id, at)
                continue
            if current is None:
                continue  # SOP or agent messages before the customer ever wrote
            if sender_kind == AI:
                current["ai_messages"] += 1
                current["first_ai_at"] = current["first_ai_at"] or at
            elif sender_kind in HUMAN_KINDS:
                current["human_messages"] += 1
                current["last_human_at"] = at
                if current["first_human_at"] is None:
                    current["first_human_at"] = at
                    current["agent_id"] = _human_agent(dims, sender_kind, sender_user_id)
                if current["waiting_since"] is not None:
                    if current["wait_answered_at"] is None:
                        current["wait_answered_at"] = at
                    current["waiting_since"] = None
            continue
        _id, kind, _at, reason = item
        if current is None:
            continue
        if kind == ConversationEvent.Kind.HANDOFF:
            current["handoffs"] += 1
            if _is_takeover(reason, at, current["last_human_at"]):
                continue  # a person took the chat over by writing: nobody waits for them
            if current["waiting_since"] is None:
                current["waiting_since"] = at
                if current["wait_started_at"] is None:
                    current["wait_started_at"] = at
        else:  # resolved: the cycle ends; a wait still running ends unanswered
            current["resolved_at"] = at
            current["waiting_since"] = None
            close(current)
            current = None
    if current is not None:
        if dims.mode == "ai":
            current["waiting_since"] = None  # handed back to the AI without a person answering
        close(current)
    return cycles


def _is_takeover(reason: str, at, last_human_at) -> bool:
    """A handoff that a person's own message caused (typed on the phone, or an agent's reply
    taking the chat over) starts no wait."""
    if reason == PHONE_REASON:
        return True
    return last_human_at is not None and (at - last_human_at) <= TAKEOVER_GRACE


def _new_cycle(conversation_id: int, at) -> dict:
    return {
        "conversation_id": conversation_id,
        "started_at": at,
        "first_ai_at": None,
        "first_human_at": None,
        "agent_id": 0,
        "handoffs": 0,
        "wait_started_at": None,
        "wait_answered_at": None,
        "last_human_at": None,
        "waiting_since": None,
        "resolved_at": None,
        "ai_messages": 0,
        "human_messages": 0,
    }


def _secs(start, end) -> float | None:
    if end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


@transaction.atomic
def cycles_refresh(*, org: Organization, conversation_ids: Iterable[int]) -> set[dt.date]:
    """Recompute every cycle of the given conversations of ``org``; returns the local days the
    conversations have cycles or messages on (the days whose counters may have moved)."""
    from apps.conversations.models import Message

    ids = list(set(conversation_ids))
    if not ids:
        return set()
    dims = conversation_dims(ids)
    ids = [i for i in ids if i in dims]
    touched: set[dt.date] = set()
    messages: dict[int, list] = defaultdict(list)
    events: dict[int, list] = defaultdict(list)
    for chunk in chunks(ids, 2000):
        for row in (
            Message.objects.filter(org=org, conversation_id__in=chunk)
            .order_by()
            .values_list(
                "id", "created_at", "conversation_id", "direction", "sender_kind", "sender_user_id"
            )
        ):
            messages[row[2]].append(row)
        for conversation_id, *event in (
            ConversationEvent.objects.filter(org=org, conversation_id__in=chunk)
            .order_by()
            .values_list("conversation_id", "id", "kind", "at", "reason")
        ):
            events[conversation_id].append(tuple(event))
    rows: list[ConversationCycle] = []
    for conversation_id in ids:
        conversation_messages = sorted(
            messages.get(conversation_id, []), key=lambda m: (m[1], m[0])
        )
        rows += _compute_cycles(
            org, dims[conversation_id], conversation_messages, events.get(conversation_id, [])
        )
    for chunk in chunks(ids, 2000):
        touched.update(
            ConversationCycle.objects.filter(org=org, conversation_id__in=chunk).values_list(
                "day", flat=True
            )
        )
        ConversationCycle.objects.filter(org=org, conversation_id__in=chunk).delete()
    ConversationCycle.objects.bulk_create(rows, batch_size=2000)
    touched.update(row.day for row in rows)
    return touched


def conversation_days(*, org: Organization, conversation_ids: Iterable[int]) -> set[dt.date]:
    """Every local day on which the conversations have a message, event or ledger row (after a
    change of assignee, app or labels all of them count under other dimensions)."""
    from apps.billing.models import CostLedger
    from apps.conversations.models import AITurn, Message

    ids = list(set(conversation_ids))
    days: set[dt.date] = set()
    for chunk in chunks(ids, 2000):
        for model, field in (
            (Message, "conversation_id__in"),
            (AITurn, "conversation_id__in"),
            (ConversationEvent, "conversation_id__in"),
        ):
            stamp = "at" if model is ConversationEvent else "created_at"
            for at in model.objects.filter(org=org, **{field: chunk}).values_list(stamp, flat=True):
                days.add(local_day(org, at))
        for at in CostLedger.objects.filter(org=org, conversation_id__in=chunk).values_list(
            "created_at", flat=True
        ):
            days.add(local_day(org, at))
    return days


# -- days ------------------------------------------------------------------------------------


def _blank() -> dict:
    row = dict.fromkeys(COUNTERS, 0)
    row.update(dict.fromkeys(MONEY, Decimal(0)))
    return row


class _Acc:
    """Counters keyed by (account, agent, AI app, label); label 0 is the total.

    Besides the full combination, every contribution is added to four roll-up rows (``ALL`` =
    -1 in the other dimensions): the organisation's total, per account, per agent and per AI
    app. A report without filters reads one row per day, one filtered or grouped by a single
    dimension reads that dimension's roll-ups, and only combined filters read the full rows.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[int, int, int, int], dict] = defaultdict(_blank)

    def add(self, dims: Dims | None, field: str, value=1, *, agent=None, ai_app=None, account=None):
        if dims is None:
            key = (account or 0, agent or 0, ai_app or 0)
            labels: tuple[int, ...] = ()
        else:
            key = (
                dims.account_id if account is None else account,
                dims.assignee_id if agent is None else agent,
                (ai_app or dims.ai_app_id),
            )
            labels = dims.labels
        a, g, p = key
        for k in ((a, g, p), (ALL, ALL, ALL), (a, ALL, ALL), (ALL, g, ALL), (ALL, ALL, p)):
            self.rows[(*k, 0)][field] += value
            for label in labels:
                self.rows[(*k, label)][field] += value


@transaction.atomic
def day_refresh(*, org: Organization, day: dt.date) -> int:
    """Recompute the counters of one local day of ``org`` from the raw rows (replaces them).

    Cycles must be current (``cycles_refresh``) for ``conversations_started``. Returns the
    number of ``DailyStat`` rows written.
    """
    from apps.billing.models import CostLedger, Kind
    from apps.conversations.models import AITurn, Message
    from apps.wechat_accounts.models import AccountStatusEvent, WeChatAccount

    start, end = day_bounds(org, day)
    acc = _Acc()
    messages = list(
        Message.objects.filter(org=org, created_at__gte=start, created_at__lt=end)
        .order_by()
        .values_list(
            "conversation_id", "direction", "sender_kind", "status", "error", "sender_user_id"
        )
    )
    turns = list(
        AITurn.objects.filter(org=org, created_at__gte=start, created_at__lt=end)
        .order_by()
        .values_list("conversation_id", "status", "ai_app_id", "cost")
    )
    events = list(
        ConversationEvent.objects.filter(org=org, at__gte=start, at__lt=end)
        .order_by()
        .values_list("conversation_id", "kind", "reason")
    )
    ledger = list(
        CostLedger.objects.filter(org=org, created_at__gte=start, created_at__lt=end)
        .order_by()
        .values_list("conversation_id", "wechat_account_id", "user_id", "kind", "cost")
    )
    started = list(
        ConversationCycle.objects.filter(org=org, day=day)
        .order_by()
        .values_list("conversation_id", flat=True)
    )
    conversation_ids = {m[0] for m in messages} | {t[0] for t in turns} | {e[0] for e in events}
    conversation_ids |= {row[0] for row in ledger if row[0]} | set(started)
    dims = conversation_dims(conversation_ids)

    for conversation_id, direction, sender_kind, status, error, sender_user_id in messages:
        d = dims.get(conversation_id)
        if d is None:
            continue
        if direction == Message.Direction.INBOUND:
            if sender_kind == CUSTOMER:
                acc.add(d, "inbound_messages")
            continue
        agent = _human_agent(d, sender_kind, sender_user_id) if sender_kind in HUMAN_KINDS else None
        acc.add(d, "outbound_messages", agent=agent)
        if sender_kind == AI:
            acc.add(d, "ai_messages")
        elif sender_kind == AGENT:
            acc.add(d, "agent_messages", agent=agent)
        elif sender_kind == PHONE:
            acc.add(d, "phone_messages", agent=agent)
        elif sender_kind == SOP:
            acc.add(d, "sop_messages")
        if status == Message.Status.FAILED:
            acc.add(d, "outbound_failed", agent=agent)
            if (error or "").startswith("delivery_unknown"):
                acc.add(d, "delivery_unknown", agent=agent)
    for conversation_id, status, ai_app_id, cost in turns:
        d = dims.get(conversation_id)
        if d is None or status == AITurn.Status.SKIPPED:
            continue
        acc.add(d, "ai_turns", ai_app=ai_app_id)
        if status == AITurn.Status.ANSWERED:
            acc.add(d, "ai_turns_answered", ai_app=ai_app_id)
            acc.add(d, "ai_cost_answers", cost or Decimal(0), ai_app=ai_app_id)
    for conversation_id, kind, reason in events:
        d = dims.get(conversation_id)
        if d is None:
            continue
        if kind == ConversationEvent.Kind.RESOLVED:
            acc.add(d, "conversations_resolved")
            continue
        acc.add(d, "handoffs")
        acc.add(d, f"handoffs_{reason}" if reason in HANDOFF_REASONS else "handoffs_other")
        if reason == "ai_failed":
            acc.add(d, "ai_failures")
    for conversation_id in started:
        d = dims.get(conversation_id)
        if d is not None:
            acc.add(d, "conversations_started")
    for conversation_id, account_id, user_id, kind, cost in ledger:
        field = "platform_cost" if kind == Kind.PLATFORM else "ai_cost"
        d = dims.get(conversation_id) if conversation_id else None
        if d is not None:
            acc.add(d, field, cost or Decimal(0))
        else:
            acc.add(None, field, cost or Decimal(0), account=account_id, agent=user_id)
    _drafts(org, start, end, acc)
    _deferrals(org, start, end, acc)
    _offline(org, day, start, end, acc, AccountStatusEvent, WeChatAccount)

    DailyStat.objects.filter(org=org, day=day).delete()
    stats = [
        DailyStat(
            org=org,
            day=day,
            account_id=account,
            agent_id=agent,
            ai_app_id=app,
            label_id=label,
            **values,
        )
        for (account, agent, app, label), values in acc.rows.items()
        if any(values.values())
    ]
    DailyStat.objects.bulk_create(stats, batch_size=2000)
    _sop_day(org, day, start, end)
    return len(stats)


def _drafts(org: Organization, start, end, acc: _Acc) -> None:
    """Draft outcomes (reply mode ``draft``), counted on the day they were decided."""
    from django.apps import apps

    try:
        Draft = apps.get_model("conversations", "Draft")
    except LookupError:
        return  # drafts do not exist in this version of the conversations app
    outcomes = {"sent": "drafts_sent", "edited": "drafts_edited", "discarded": "drafts_discarded"}
    rows = list(
        Draft.objects.filter(
            org=org, decided_at__gte=start, decided_at__lt=end, status__in=list(outcomes)
        )
        .order_by()
        .values_list("conversation_id", "status", "decided_by_id")
    )
    dims = conversation_dims({r[0] for r in rows})
    for conversation_id, status, user_id in rows:
        d = dims.get(conversation_id)
        if d is not None:
            acc.add(d, outcomes[status], agent=user_id or None)


def _deferrals(org: Organization, start, end, acc: _Acc) -> None:
    """Rate-limit deferrals per account (hours are counted on the local day they start in)."""
    from django.db.models import Sum

    from apps.reports.models import SendDeferralHour

    for account_id, count in (
        SendDeferralHour.objects.filter(org=org, hour__gte=start, hour__lt=end)
        .order_by()
        .values("account_id")
        .annotate(n=Sum("count"))
        .values_list("account_id", "n")
    ):
        if count:
            acc.add(None, "rate_limit_deferrals", count, account=account_id)


def _offline(org, day, start, end, acc: _Acc, AccountStatusEvent, WeChatAccount) -> None:
    """Seconds of the day each account spent offline, risk-controlled or banned (from the
    account's status history; the time after now is not counted)."""
    from django.utils import timezone

    down = set(WeChatAccount.ALERT_STATUSES)
    end = min(end, timezone.now())
    if end <= start:
        return
    from django.db.models import OuterRef, Subquery

    history: dict[int, list] = defaultdict(list)
    # The status each account had when the day began (its last change before), then the
    # changes during the day: the read stays the same size however long the history is.
    before = AccountStatusEvent.objects.filter(
        org=org, account_id=OuterRef("pk"), at__lte=start
    ).order_by("-at", "-id")
    for account_id, to_status, at in (
        WeChatAccount.objects.filter(org=org)
        .annotate(status_at=Subquery(before.values("at")[:1]))
        .annotate(status_then=Subquery(before.values("to_status")[:1]))
        .exclude(status_at=None)
        .values_list("id", "status_then", "status_at")
    ):
        history[account_id].append((at, to_status))
    for account_id, to_status, at in (
        AccountStatusEvent.objects.filter(org=org, at__gt=start, at__lt=end)
        .order_by("account_id", "at", "id")
        .values_list("account_id", "to_status", "at")
    ):
        history[account_id].append((at, to_status))
    for account_id, changes in history.items():
        seconds = 0.0
        status, since = None, start
        for at, to_status in changes:
            if at <= start:
                status = to_status
                continue
            if status in down:
                seconds += (at - max(since, start)).total_seconds()
            status, since = to_status, at
        if status in down:
            seconds += (end - max(since, start)).total_seconds()
        if seconds > 0:
            acc.add(None, "offline_seconds", int(round(seconds)), account=account_id)


@transaction.atomic
def sop_day_refresh(*, org: Organization, day: dt.date) -> None:
    start, end = day_bounds(org, day)
    _sop_day(org, day, start, end)


def _sop_day(org: Organization, day: dt.date, start, end) -> None:
    """SOP deliveries due on ``day`` per plan step and account; a sent delivery counts as
    replied when the contact wrote to that account within 24 h after it was sent."""
    from apps.conversations.models import Message
    from apps.sop.models import SopDelivery

    rows = list(
        SopDelivery.objects.filter(org=org, due_at__gte=start, due_at__lt=end)
        .order_by()
        .values_list("plan_id", "step_id", "account_id", "status", "contact_id", "sent_at")
    )
    counts: dict[tuple[int, int, int], dict] = defaultdict(
        lambda: {"sent": 0, "failed": 0, "skipped": 0, "replied": 0}
    )
    sent = [r for r in rows if r[3] == SopDelivery.Status.SENT and r[5] is not None]
    replies: dict[tuple[int, int], list] = defaultdict(list)
    if sent:
        window = dt.timedelta(hours=24)
        contacts = list({r[4] for r in sent})
        first, last = min(r[5] for r in sent), max(r[5] for r in sent) + window
        for chunk in chunks(contacts, 2000):
            for account_id, contact_id, at in (
                Message.objects.filter(
                    org=org,
                    conversation__contact_id__in=chunk,
                    sender_kind=CUSTOMER,
                    created_at__gt=first,
                    created_at__lte=last,
                )
                .order_by()
                .values_list("conversation__account_id", "conversation__contact_id", "created_at")
            ):
                replies[(account_id, contact_id)].append(at)
    for plan_id, step_id, account_id, status, contact_id, sent_at in rows:
        key = (plan_id, step_id, account_id)
        if status in ("sent", "failed", "skipped"):
            counts[key][status] += 1
        if status == "sent" and sent_at is not None:
            limit = sent_at + dt.timedelta(hours=24)
            if any(sent_at < at <= limit for at in replies.get((account_id, contact_id), ())):
                counts[key]["replied"] += 1
    SopStepDaily.objects.filter(org=org, day=day).delete()
    SopStepDaily.objects.bulk_create(
        [
            SopStepDaily(org=org, day=day, plan_id=p, step_id=s, account_id=a, **values)
            for (p, s, a), values in counts.items()
            if any(values.values())
        ]
    )
