"""Exact figures of the hand-built history (tests/reports/history.py), incrementally
maintained, and the same after ``reports_rebuild``."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command

from apps.reports import selectors
from apps.reports.models import ConversationCycle, ConversationEvent, DailyStat, SopStepDaily
from tests.reports import history

pytestmark = pytest.mark.django_db


def _filter(org, **dims):
    return selectors.ReportFilter(org=org, start=history.DAY, end=history.DAY, **dims)


def test_handoff_and_resolution_events_are_recorded_as_they_happen(org, built):
    events = list(
        ConversationEvent.objects.filter(org=org, kind="handoff")
        .order_by("at")
        .values_list("reason", flat=True)
    )
    assert events == [
        "keyword",
        "sentiment",
        "ai_failed",
        "budget",
        "phone_reply",
        "agent",
        "no_ai_app",
    ]
    assert ConversationEvent.objects.filter(org=org, kind="resolved").count() == 3


def test_conversation_counts_and_handoffs_by_reason(org, built):
    data = selectors.conversations_report(_filter(org))
    assert data["summary"] == {
        "inbound_messages": 9,
        "conversations_started": 8,
        "conversations_resolved": 3,
        "ai_turns": 1,
        "ai_turns_answered": 1,
        "ai_messages": 3,
        "answered_by_ai": 3,
        "fully_automated": 1,
        "ai_failures": 1,
        "handoffs": 7,
        "still_waiting": 1,
        "drafts_sent": 0,
        "drafts_edited": 0,
        "drafts_discarded": 0,
    }
    assert data["handoffs_by_reason"] == {
        "keyword": 1,
        "sentiment": 1,
        "ai_failed": 1,
        "budget": 1,
        "phone_reply": 1,
        "agent": 1,
        "no_ai_app": 1,
        "other": 0,
    }


def test_speed_percentiles(org, built):
    speed = selectors.conversations_report(_filter(org))["speed"]
    # First AI answers 2, 5, 10 s.
    assert speed["first_ai_response"] == {"count": 3, "p50": 5.0, "p90": 9.0}
    # First human answers 60, 120, 180, 301, 620, 1201 s.
    assert speed["first_human_response"] == {"count": 6, "p50": 240.5, "p90": 910.5}
    # Waits after a handoff 120, 300, 600, 1200 s (takeovers start no wait; C4 still waits).
    assert speed["handoff_wait"] == {"count": 4, "p50": 450.0, "p90": 1020.0}
    # Resolutions 600, 1800, 3600 s.
    assert speed["resolution"] == {"count": 3, "p50": 1800.0, "p90": 3240.0}


def test_agent_figures(org, built):
    rows = {r["agent"]: r for r in selectors.agents_report(_filter(org))["rows"]}
    one, two = rows["Agent One"], rows["Agent Two"]
    assert one["conversations_handled"] == 3  # C2, C5, C7
    assert one["messages_sent"] == 4  # C2, C5 twice (one failed), C7
    assert one["first_response_p50"] == 180.0  # 60, 180, 301
    assert one["handoff_wait_p50"] == 210.0  # 120, 300
    assert one["assigned_open"] == 2  # C4 (pending), C7 (pending); C2 and C5 resolved
    assert two["conversations_handled"] == 2
    assert two["first_response_p50"] == 910.5  # 620, 1201
    assert two["handoff_wait_p90"] == 1140.0  # 600, 1200
    # The phone reply counts for the account's owner (the manager).
    assert rows[str(built.manager.name or built.manager.email)]["messages_sent"] == 1


def test_account_sop_and_cost_figures(org, built):
    accounts = {r["account"]: r for r in selectors.accounts_report(_filter(org))["rows"]}
    phone = accounts["Sales phone"]
    assert phone["messages_in"] == 9
    assert phone["messages_out"] == 3 + 6 + 1  # AI, agent (one failed), phone
    assert phone["send_failures"] == 1 and phone["delivery_unknown"] == 1
    assert phone["offline_hours"] == 1.5
    assert accounts["Spare phone"]["messages_in"] == 0

    sop = selectors.sop_report(_filter(org))
    assert sop["summary"] == {"sent": 2, "failed": 1, "skipped": 1, "replied": 1, "reply_rate": 0.5}
    assert sop["rows"][0]["plan"] == "Welcome"

    cost = selectors.cost_report(_filter(org))
    assert cost["summary"] == {
        "ai_cost": "0.01",
        "platform_cost": "0.01",
        "total_cost": "0.02",
        "cost_per_conversation": "0.00",
        "cost_per_ai_answer": "0.0123",
    }
    assert cost["by_account"][0]["account"] == "Sales phone"


def test_filters_by_agent_label_and_app(org, built):
    by_agent = selectors.overview_report(_filter(org, agent_id=built.agent1.pk))["summary"]
    assert by_agent["inbound_messages"] == 5  # C2 (2), C4, C5, C7
    assert by_agent["still_waiting"] == 1  # C4
    by_label = selectors.conversations_report(_filter(org, label_id=built.label.pk))
    assert by_label["summary"]["inbound_messages"] == 3  # C2 (2), C3
    assert by_label["handoffs_by_reason"]["keyword"] == 1
    assert by_label["handoffs_by_reason"]["sentiment"] == 1
    assert by_label["summary"]["handoffs"] == 2
    assert by_label["speed"]["handoff_wait"]["count"] == 2
    by_app = selectors.overview_report(_filter(org, ai_app_id=built.app.pk))["summary"]
    assert by_app["inbound_messages"] == 9
    other = selectors.overview_report(_filter(org, account_id=built.other_account.pk))
    assert other["summary"]["inbound_messages"] == 0


def _snapshot(org):
    stats = sorted(
        tuple(v for k, v in row.items() if k not in ("id", "created_at", "updated_at"))
        for row in DailyStat.objects.filter(org=org).values()
    )
    cycles = sorted(
        tuple(v for k, v in row.items() if k not in ("id", "created_at", "updated_at"))
        for row in ConversationCycle.objects.filter(org=org).values()
    )
    sop = sorted(
        tuple(v for k, v in row.items() if k not in ("id", "created_at", "updated_at"))
        for row in SopStepDaily.objects.filter(org=org).values()
    )
    return stats, cycles, sop


def test_rebuild_equals_incremental(org, built, rebuild):
    incremental = _snapshot(org)
    assert incremental[0] and incremental[1] and incremental[2]
    DailyStat.objects.filter(org=org).delete()
    ConversationCycle.objects.filter(org=org).delete()
    SopStepDaily.objects.filter(org=org).delete()
    rebuild(org)
    assert _snapshot(org) == incremental


def test_rebuild_command_recomputes_a_range(org, built):
    incremental = _snapshot(org)
    DailyStat.objects.filter(org=org).update(inbound_messages=999)
    call_command(
        "reports_rebuild",
        "--org",
        str(org.pk),
        "--start",
        str(history.DAY - dt.timedelta(days=1)),
        "--end",
        str(history.DAY),
    )
    assert _snapshot(org)[0] == incremental[0]


def test_refresh_twice_changes_nothing(org, built, refresh):
    before = _snapshot(org)
    from apps.reports import services

    services.dirty_mark(org_id=org.pk, conversation_ids=[built.conversations[2].pk])
    refresh()
    refresh()
    assert _snapshot(org) == before


def test_reassigning_a_conversation_moves_its_figures(
    org, built, refresh, django_capture_on_commit_callbacks
):
    from apps.conversations import services as conv

    with django_capture_on_commit_callbacks(execute=True):
        conv.conversation_assign(
            org=org, conversation_id=built.conversations[4].pk, assignee=built.agent2
        )
    refresh()
    agent2 = selectors.overview_report(_filter(org, agent_id=built.agent2.pk))["summary"]
    assert agent2["inbound_messages"] == 2 + 1  # C3, C8 and now C4
    assert agent2["still_waiting"] == 1


def test_cached_reports_last_until_the_next_refresh(org, built, settings, refresh):
    settings.REPORTS_CACHE_SECONDS = 60
    from apps.reports import services

    f = _filter(org)
    assert selectors.report("overview", f)["summary"]["inbound_messages"] == 9
    DailyStat.objects.filter(org=org).update(inbound_messages=0)
    assert selectors.report("overview", f)["summary"]["inbound_messages"] == 9  # cached
    services.cache_invalidate(org_id=org.pk)
    assert selectors.report("overview", f)["summary"]["inbound_messages"] == 0
    services.dirty_mark(org_id=org.pk, at=[history.at(12)])
    refresh()  # recomputes the day from the raw rows and invalidates the cache
    assert selectors.report("overview", f)["summary"]["inbound_messages"] == 9


def test_draft_outcomes(org, built, refresh, django_capture_on_commit_callbacks):
    import time_machine

    from apps.conversations.models import Draft

    c = built.conversations
    outcomes = [
        (c[2], "sent", built.agent1),
        (c[5], "edited", built.agent1),
        (c[3], "discarded", built.agent2),
        (c[8], "expired", None),
        (c[4], "pending", None),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for conversation, status, user in outcomes:
            with time_machine.travel(history.at(17), tick=False):
                Draft.objects.create(
                    org=org,
                    conversation=conversation,
                    text="draft",
                    status=status,
                    expires_at=history.at(19),
                    decided_at=None if status == "pending" else history.at(17, 30),
                    decided_by=user,
                )
    refresh()
    summary = selectors.conversations_report(_filter(org))["summary"]
    assert (summary["drafts_sent"], summary["drafts_edited"], summary["drafts_discarded"]) == (
        1,
        1,
        1,
    )
    rows = {r["agent"]: r for r in selectors.agents_report(_filter(org))["rows"]}
    assert (rows["Agent One"]["drafts_sent"], rows["Agent One"]["drafts_edited"]) == (1, 1)
    assert rows["Agent Two"]["drafts_discarded"] == 1


def test_rate_limit_deferrals_of_the_send_pipeline(
    org, built, refresh, monkeypatch, django_capture_on_commit_callbacks
):
    """The pipeline's rate-limited branch announces each postponement; reports count them per
    account and day."""
    from types import SimpleNamespace

    import time_machine

    from apps.conversations.models import Message
    from apps.conversations.outbound import delivery

    account = built.account
    account.status = account.Status.ONLINE
    account.save(update_fields=["status"])
    monkeypatch.setattr(
        delivery.ratelimit,
        "acquire",
        lambda limits: SimpleNamespace(allowed=False, retry_after=1.0),
    )
    monkeypatch.setattr(delivery, "enqueue", lambda **kwargs: None)
    with time_machine.travel(history.at(18), tick=False):
        message = Message.objects.create(
            org=org,
            conversation=built.conversations[3],
            account=account,
            direction=Message.Direction.OUTBOUND,
            sender_kind=Message.SenderKind.AGENT,
            sender_user=built.agent2,
            text="later",
            status=Message.Status.QUEUED,
            to_wxid="wxid_x",
            is_urgent=True,
        )
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(2):
                result = delivery.outbound_deliver(org_id=org.pk, message_id=message.pk)
                assert result.outcome == "rate_limited"
    refresh()
    rows = {r["account"]: r for r in selectors.accounts_report(_filter(org))["rows"]}
    assert rows["Sales phone"]["rate_limit_deferrals"] == 2
    assert rows["Spare phone"]["rate_limit_deferrals"] == 0


def test_a_lost_refresh_task_is_enqueued_again(org, built, refresh, monkeypatch):
    from apps.reports import services, tasks

    DailyStat.objects.filter(org=org).delete()
    services.dirty_mark(org_id=org.pk, at=[history.at(12)])
    monkeypatch.setattr(tasks.reports_refresh, "apply_async", lambda **kwargs: None)  # lost
    refresh()
    assert services.dirty_orgs_list() == [org.pk]
    assert not DailyStat.objects.filter(org=org).exists()
    monkeypatch.undo()
    refresh()
    assert services.dirty_orgs_list() == []
    assert selectors.overview_report(_filter(org))["summary"]["inbound_messages"] == 9


def test_nightly_rebuild_task_twice_gives_the_same_figures(org, built, settings):
    import time_machine

    from apps.reports import tasks

    before = _snapshot(org)
    settings.REPORTS_REBUILD_RECENT_DAYS = 2
    with time_machine.travel(history.at(23), tick=False):
        assert tasks.reports_rebuild_recent_all_orgs() >= 1
        tasks.reports_rebuild_recent_all_orgs()
    assert _snapshot(org) == before
