"""SOP services against the GeWe simulator: triggers in two time zones, exactly-once, life
cycle, stop conditions, end actions, tag rules, AI steps, quiet hours, skips, dry run."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, timedelta

import pytest
import time_machine
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.billing.models import CostLedger
from apps.conversations.models import Conversation, Message
from apps.core.exceptions import ConflictError
from apps.core.templating import render_template
from apps.sop import selectors, services
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopRun
from apps.sop.tasks import sop_run_start as sop_run_start_task
from apps.sop.tasks import sop_tick as sop_tick_task
from apps.wechat_accounts.models import Contact, Tag, WeChatAccount
from tests.fixtures_simulators import SIM_OPENAI_KEY
from tests.integrations.factories import AIAppFactory
from tests.sop.conftest import make_contact, make_plan

pytestmark = pytest.mark.django_db

S = SopDelivery.Status


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def statuses(plan) -> list[str]:
    return list(plan.deliveries.order_by("id").values_list("status", flat=True))


def set_tz(org, name):
    org.timezone = name
    org.save(update_fields=["timezone"])


# -- templates and time --------------------------------------------------------------------


def test_render_template_is_safe():
    variables = {"nickname": "Li", "city": "Hangzhou"}
    assert render_template("Hi {nickname} from {city}", variables) == ("Hi Li from Hangzhou")
    assert render_template("Hi {unknown}!", variables) == "Hi {unknown}!"
    assert render_template("Hi {unknown}!", variables, unknown="empty") == "Hi !"
    assert render_template("{ {0} {} {nickname", variables) == "{ {0} {} {nickname"
    assert render_template("{{nickname}}", variables) == "{Li}"


def test_contact_variables_include_custom_attributes(account):
    contact = make_contact(account, "wxid_a", remark="Boss Li", attributes={"city": "Suzhou"})
    variables = services.contact_variables(contact, account)
    assert variables["remark"] == "Boss Li" and variables["city"] == "Suzhou"
    assert variables["account_name"] == (account.nickname or account.name)


# -- once ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "start", "second_due"),
    [
        # Day 1 at 09:00 local: Shanghai is UTC+8 all year.
        ("Asia/Shanghai", utc(2025, 3, 29, 2, 0), utc(2025, 3, 30, 1, 0)),
        # Berlin moves from UTC+1 to UTC+2 on 30 March: 09:00 local is 07:00 UTC that day.
        ("Europe/Berlin", utc(2025, 3, 29, 9, 0), utc(2025, 3, 30, 7, 0)),
    ],
)
def test_once_plan_sends_each_step_once_when_due(
    org, account, contacts, tick, gewe, tz, start, second_due
):
    set_tz(org, tz)
    plan = make_plan(
        org,
        [account],
        start_at=start,
        steps=[
            {"kind": "text", "text": "Hi {nickname}"},
            {"kind": "text", "text": "Day two", "delay_days": 1, "send_time": dt.time(9, 0)},
        ],
    )
    with time_machine.travel(start - timedelta(hours=1), tick=False):
        services.plan_activate(org=org, plan_id=plan.pk)
        assert plan.deliveries.count() == 6
        assert tick(org).claimed == 0
    day_two = plan.deliveries.filter(step__order=1)
    assert set(day_two.values_list("due_at", flat=True)) == {second_due}
    with time_machine.travel(start, tick=False):
        tick(org)
    assert sorted(s["body"]["content"] for s in gewe.sent) == ["Hi C0", "Hi C1", "Hi C2"]
    with time_machine.travel(second_due - timedelta(seconds=1), tick=False):
        assert tick(org).claimed == 0
    with time_machine.travel(second_due, tick=False):
        tick(org)
        tick(org)
    assert len(gewe.sent) == 6
    assert statuses(plan) == [S.SENT] * 6
    plan.refresh_from_db()
    assert plan.status == SopPlan.Status.FINISHED
    assert SopRun.objects.get(plan=plan).status == SopRun.Status.FINISHED
    assert set(SopEnrollment.objects.filter(plan=plan).values_list("state", flat=True)) == {
        "completed"
    }
    assert all(d.message.sender_kind == Message.SenderKind.SOP for d in plan.deliveries.all())


# -- relative ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Asia/Shanghai", utc(2025, 3, 30, 9, 0)),  # 17:00 local both days
        ("Europe/Berlin", utc(2025, 3, 30, 8, 0)),  # 10:00 CET -> 10:00 CEST next day
    ],
)
def test_relative_contact_added_keeps_the_wall_clock_across_days(
    org, account, tick, gewe, django_capture_on_commit_callbacks, tz, expected
):
    set_tz(org, tz)
    plan = make_plan(
        org,
        [account],
        trigger="relative",
        relative_event="contact_added",
        steps=[{"kind": "text", "text": "Welcome {nickname}", "delay_days": 1}],
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    with time_machine.travel(utc(2025, 3, 29, 9, 0), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            contact = make_contact(account, "wxid_new")
    delivery = SopDelivery.objects.get(plan=plan, contact=contact)
    assert delivery.due_at == expected
    with time_machine.travel(expected - timedelta(minutes=1), tick=False):
        assert tick(org).claimed == 0
    with time_machine.travel(expected, tick=False):
        tick(org)
    assert [s["body"]["content"] for s in gewe.sent] == ["Welcome New"]
    # Hearing the event again enrols nobody twice.
    assert services.contact_added(org_id=org.pk, contact_id=contact.pk) == 0
    assert SopDelivery.objects.filter(plan=plan).count() == 1


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "Europe/Berlin"])
def test_relative_tag_applied_enrols_with_hour_offsets(
    org, account, tick, gewe, django_capture_on_commit_callbacks, tz
):
    set_tz(org, tz)
    vip = Tag.objects.create(org=org, name="vip")
    contact = make_contact(account, "wxid_t")
    plan = make_plan(
        org,
        [account],
        trigger="relative",
        relative_event="tag_applied",
        relative_tag=vip,
        steps=[{"kind": "text", "text": "VIP offer", "delay_hours": 2}],
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    applied = utc(2025, 3, 30, 0, 30)  # 02:00 -> 03:00 in Berlin is skipped: elapsed hours
    with time_machine.travel(applied, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            contact.tags.add(vip)
    delivery = SopDelivery.objects.get(plan=plan)
    assert delivery.due_at == applied + timedelta(hours=2)
    with time_machine.travel(applied + timedelta(hours=2), tick=False):
        tick(org)
    assert [s["body"]["content"] for s in gewe.sent] == ["VIP offer"]


def test_relative_plan_enrols_existing_contacts_when_it_says_so(org, account, contacts):
    plan = make_plan(
        org, [account], trigger="relative", relative_event="contact_added", enroll_existing=True
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    assert plan.enrollments.count() == 3


def test_core_events_enrol_too(org, account, django_capture_on_commit_callbacks):
    from apps.core import events

    contact = Contact.objects.create(org=org, account=account, wxid="wxid_x", source="outbound")
    plan = make_plan(org, [account], trigger="relative", relative_event="contact_added")
    services.plan_activate(org=org, plan_id=plan.pk)
    assert plan.enrollments.count() == 0  # an outbound-created contact is no new friend
    with django_capture_on_commit_callbacks(execute=True):
        events.contact_added.send(sender=None, org_id=org.pk, contact_id=contact.pk)
    assert plan.enrollments.count() == 1


# -- recurring -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "fires"),
    [
        ("Asia/Shanghai", [utc(2025, 3, 29, 1, 0), utc(2025, 3, 30, 1, 0)]),
        ("Europe/Berlin", [utc(2025, 3, 29, 8, 0), utc(2025, 3, 30, 7, 0)]),
    ],
)
def test_recurring_plan_beat_entry_and_one_run_per_occurrence(
    org, account, contacts, tick, gewe, tz, fires
):
    set_tz(org, tz)
    plan = make_plan(org, [account], trigger="recurring", cron="0 9 * * *")
    with time_machine.travel(utc(2025, 3, 28, 12, 0), tick=False):
        services.plan_activate(org=org, plan_id=plan.pk)
        assert services.next_fire_times(plan, count=2) == fires
    task = PeriodicTask.objects.get(name=f"sop-plan-{plan.pk}")
    assert task.enabled and task.task == "apps.sop.tasks.sop_run_start"
    assert str(task.crontab.timezone) == tz and task.crontab.hour == "9"
    for fire in fires:
        with time_machine.travel(fire + timedelta(seconds=3), tick=False):
            first = sop_run_start_task(org_id=org.pk, plan_id=plan.pk)
            again = sop_run_start_task(org_id=org.pk, plan_id=plan.pk)  # a second beat
            assert first and again is None
            tick(org)
    runs = list(SopRun.objects.filter(plan=plan).order_by("started_at"))
    assert [r.started_at for r in runs] == fires
    assert runs[1].occurrence.endswith(
        "09:00" + fires[1].astimezone(org.tzinfo).strftime("%z")[:3] + ":00"
    )
    assert len(gewe.sent) == 6  # 3 contacts x 2 occurrences, each once
    services.plan_pause(org=org, plan_id=plan.pk)
    task.refresh_from_db()
    assert not task.enabled
    services.plan_resume(org=org, plan_id=plan.pk)
    task.refresh_from_db()
    assert task.enabled
    services.plan_cancel(org=org, plan_id=plan.pk)
    assert not PeriodicTask.objects.filter(name=f"sop-plan-{plan.pk}").exists()


# -- exactly once --------------------------------------------------------------------------


def test_second_claim_gets_nothing(org, account, contacts):
    plan = make_plan(org, [account])
    services.plan_activate(org=org, plan_id=plan.pk)
    _token, first = services.claim_due(org_id=org.pk)
    _token2, second = services.claim_due(org_id=org.pk)
    assert len(first) == 3 and second == []


def test_crashed_claim_is_retried_and_sent_once(org, account, contacts, tick, gewe, settings):
    plan = make_plan(org, [account])
    services.plan_activate(org=org, plan_id=plan.pk)
    _token, ids = services.claim_due(org_id=org.pk)  # the worker dies here
    assert len(ids) == 3
    assert tick(org).claimed == 0  # still leased
    later = timezone.now() + timedelta(seconds=settings.SOP_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        result = tick(org)
    assert result.recovered == 3 and result.queued == 3
    assert len(gewe.sent) == 3 and statuses(plan) == [S.SENT] * 3
    assert list(plan.deliveries.values_list("attempts", flat=True)) == [2, 2, 2]


def test_retry_after_message_created_reuses_the_message(
    org, account, contacts, tick, gewe, django_capture_on_commit_callbacks
):
    """A worker that created the Message but lost its claim: the retry finds the same Message
    by the delivery's idempotency key; one message, one send."""
    plan = make_plan(org, [account], steps=[{"kind": "text", "text": "Once"}])
    services.plan_activate(org=org, plan_id=plan.pk)
    delivery = plan.deliveries.first()
    with django_capture_on_commit_callbacks(execute=True):
        first = services._send(delivery, "Once")  # noqa: SLF001 - simulating the lost worker
    tick(org)
    delivery.refresh_from_db()
    assert delivery.message_id == first.pk
    assert Message.objects.filter(client_msg_id=f"sop-delivery-{delivery.pk}").count() == 1
    assert [s["body"]["content"] for s in gewe.sent].count("Once") == 3


def test_pipeline_retry_still_sends_once(org, account, tick, gewe):
    make_contact(account, "wxid_r")
    gewe.add_fault("error", path="/message/postText", status=500, times=1)
    plan = make_plan(org, [account])
    services.plan_activate(org=org, plan_id=plan.pk)
    tick(org)
    delivery = plan.deliveries.get()
    assert delivery.status == S.SENT and delivery.message.attempts == 2
    assert len(gewe.sent) == 1


def test_tick_task_twice_is_a_no_op(
    org, account, contacts, gewe, django_capture_on_commit_callbacks
):
    plan = make_plan(org, [account])
    services.plan_activate(org=org, plan_id=plan.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert sop_tick_task(org_id=org.pk)["queued"] == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert sop_tick_task(org_id=org.pk)["queued"] == 0
    assert len(gewe.sent) == 3


def test_tasks_of_another_org_touch_nothing(org, other_org, account, contacts, gewe):
    plan = make_plan(org, [account])
    services.plan_activate(org=org, plan_id=plan.pk)
    assert sop_tick_task(org_id=other_org.pk)["claimed"] == 0
    assert sop_run_start_task(org_id=other_org.pk, plan_id=plan.pk) is None
    assert services.tag_applied(org_id=other_org.pk, contact_id=contacts[0].pk, tag_id=1) == 0
    assert services.contact_added(org_id=other_org.pk, contact_id=contacts[0].pk) == 0
    assert statuses(plan) == [S.SCHEDULED] * 3 and gewe.sent == []


# -- life cycle ----------------------------------------------------------------------------


def test_pause_resume_cancel(org, account, contacts, tick, gewe):
    plan = make_plan(
        org,
        [account],
        steps=[{"kind": "text", "text": "one"}, {"kind": "text", "text": "two", "delay_days": 1}],
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    services.plan_pause(org=org, plan_id=plan.pk)
    assert tick(org).claimed == 0
    with pytest.raises(ConflictError):
        services.plan_pause(org=org, plan_id=plan.pk)
    services.plan_resume(org=org, plan_id=plan.pk)
    tick(org)
    assert len(gewe.sent) == 3
    services.plan_cancel(org=org, plan_id=plan.pk)
    with time_machine.travel(timezone.now() + timedelta(days=2), tick=False):
        assert tick(org).claimed == 0
    assert plan.deliveries.filter(status=S.SKIPPED, reason="plan_cancelled").count() == 3
    assert len(gewe.sent) == 3
    with pytest.raises(ConflictError):
        services.plan_resume(org=org, plan_id=plan.pk)


def test_editing_an_active_plan_changes_only_deliveries_not_yet_queued(
    org, account, contacts, tick, gewe
):
    plan = make_plan(
        org,
        [account],
        steps=[
            {"kind": "text", "text": "first"},
            {"kind": "text", "text": "old second", "delay_days": 1},
        ],
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    tick(org)
    first, second = selectors.plan_steps(plan=plan)
    services.plan_update(
        org=org,
        plan_id=plan.pk,
        steps=[
            {"id": first.pk, "kind": "text", "text": "first EDITED"},
            {"id": second.pk, "kind": "text", "text": "new second", "delay_days": 2},
            {"kind": "text", "text": "third", "delay_days": 3},
        ],
    )
    assert plan.deliveries.count() == 9
    with time_machine.travel(timezone.now() + timedelta(days=1, hours=1), tick=False):
        assert tick(org).claimed == 0  # moved to day 2
    with time_machine.travel(timezone.now() + timedelta(days=3, hours=1), tick=False):
        tick(org)
    texts = [s["body"]["content"] for s in gewe.sent]
    assert texts.count("first") == 3 and "first EDITED" not in texts
    assert texts.count("new second") == 3 and texts.count("third") == 3


# -- stop conditions -----------------------------------------------------------------------


def _two_step_plan(org, account, **fields):
    plan = make_plan(
        org,
        [account],
        steps=[{"kind": "text", "text": "one"}, {"kind": "text", "text": "two", "delay_days": 1}],
        **fields,
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    return plan


def test_stop_when_contact_replied(org, account, tick, gewe):
    contact = make_contact(account, "wxid_s")
    plan = _two_step_plan(org, account)
    tick(org)
    conversation = Conversation.objects.get(org=org, contact=contact)
    Message.objects.create(
        org=org,
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        sender_kind=Message.SenderKind.CUSTOMER,
        text="thanks",
    )
    with time_machine.travel(timezone.now() + timedelta(days=1, minutes=1), tick=False):
        tick(org)
    assert [s["body"]["content"] for s in gewe.sent] == ["one"]
    enrollment = plan.enrollments.get()
    assert enrollment.state == "stopped" and enrollment.stop_reason == "contact_replied"


def test_stop_when_handed_to_a_person(org, account, tick, gewe):
    contact = make_contact(account, "wxid_h")
    _two_step_plan(org, account)
    tick(org)
    Conversation.objects.filter(org=org, contact=contact).update(mode=Conversation.Mode.HUMAN)
    with time_machine.travel(timezone.now() + timedelta(days=1, minutes=1), tick=False):
        tick(org)
    assert len(gewe.sent) == 1
    assert SopDelivery.objects.filter(reason="handed_to_person").count() == 1


def test_stop_when_contact_got_the_stop_tag(org, account, tick, gewe):
    bought = Tag.objects.create(org=org, name="bought")
    contact = make_contact(account, "wxid_b")
    _two_step_plan(org, account, stop_tag=bought)
    tick(org)
    contact.tags.add(bought)
    with time_machine.travel(timezone.now() + timedelta(days=1, minutes=1), tick=False):
        tick(org)
    assert len(gewe.sent) == 1
    assert SopDelivery.objects.filter(reason="stop_tag").count() == 1


def test_stop_after_a_date_finishes_the_plan(org, account, tick, gewe):
    make_contact(account, "wxid_d")
    plan = _two_step_plan(org, account, stop_after=timezone.now() + timedelta(hours=12))
    tick(org)
    with time_machine.travel(timezone.now() + timedelta(days=1, minutes=1), tick=False):
        tick(org)
    plan.refresh_from_db()
    assert plan.status == SopPlan.Status.FINISHED and len(gewe.sent) == 1
    assert SopDelivery.objects.filter(reason="plan_stop_date").count() == 1


# -- end actions ---------------------------------------------------------------------------


def test_end_actions_add_and_remove_tags_and_move_to_another_plan(org, account, tick, gewe):
    warm = Tag.objects.create(org=org, name="warm")
    cold = Tag.objects.create(org=org, name="cold")
    contact = make_contact(account, "wxid_e")
    contact.tags.add(cold)
    follow_up = make_plan(
        org,
        [account],
        name="Follow-up",
        trigger="relative",
        relative_event="tag_applied",
        relative_tag=warm,
        steps=[{"kind": "text", "text": "follow-up", "delay_days": 1}],
    )
    services.plan_activate(org=org, plan_id=follow_up.pk)
    plan = make_plan(
        org,
        [account],
        steps=[
            {"kind": "text", "text": "a", "end_action": "add_tag", "end_tag": warm},
            {"kind": "text", "text": "b", "end_action": "remove_tag", "end_tag": cold},
            {
                "kind": "text",
                "text": "c",
                "delay_days": 1,
                "end_action": "move_to_plan",
                "end_plan": follow_up,
            },
            {"kind": "text", "text": "never", "delay_days": 2},
        ],
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    tick(org)
    assert set(contact.tags.values_list("name", flat=True)) == {"warm"}
    with time_machine.travel(timezone.now() + timedelta(days=1, minutes=1), tick=False):
        tick(org)
    with time_machine.travel(timezone.now() + timedelta(days=3), tick=False):
        tick(org)
    assert [s["body"]["content"] for s in gewe.sent] == ["a", "b", "c", "follow-up"]
    assert plan.enrollments.get().stop_reason == "moved_to_plan"
    assert follow_up.enrollments.filter(contact=contact).count() == 1


# -- targets and tag rules -----------------------------------------------------------------


def test_tag_rules_any_all_exclude_and_target_types(org, account):
    a = Tag.objects.create(org=org, name="a")
    b = Tag.objects.create(org=org, name="b")
    x = Tag.objects.create(org=org, name="x")
    only_a = make_contact(account, "wxid_1")
    only_a.tags.add(a)
    both = make_contact(account, "wxid_2")
    both.tags.add(a, b)
    both_x = make_contact(account, "wxid_3")
    both_x.tags.add(a, b, x)
    group = make_contact(account, "123@chatroom", kind=Contact.Kind.GROUP)
    group.tags.add(a)
    plan = make_plan(org, [account], target_type="tag", tag_match="any")
    plan.include_tags.set([a, b])

    def targets():
        return set(selectors.plan_targets(plan=plan).values_list("wxid", flat=True))

    assert targets() == {"wxid_1", "wxid_2", "wxid_3", "123@chatroom"}
    plan.tag_match = "all"
    assert targets() == {"wxid_2", "wxid_3"}
    plan.exclude_tags.set([x])
    assert targets() == {"wxid_2"}
    plan.target_type = "groups"
    plan.tag_match = "any"
    plan.include_tags.set([])
    assert targets() == {"123@chatroom"}
    plan.target_type = "list"
    plan.target_contact_ids = [only_a.pk, both_x.pk]
    assert targets() == {"wxid_1"}  # the excluded tag still applies


# -- AI steps ------------------------------------------------------------------------------


def test_ai_personalised_step_is_billed_and_sent(org, account, tick, gewe, simulators_clean):
    simulators_clean["openai"].canned["Li"] = "Dear Li, our spring offer is ready."
    app = AIAppFactory(org=org, base_url=simulators_clean.urls["openai"], api_key=SIM_OPENAI_KEY)
    make_contact(account, "wxid_li", nickname="Li", attributes={"city": "Ningbo"})
    plan = make_plan(
        org,
        [account],
        ai_app=app,
        steps=[{"kind": "ai", "ai_prompt": "Write an offer to {nickname} ({profile})."}],
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    tick(org)
    delivery = plan.deliveries.get()
    assert delivery.status == S.SENT
    assert [s["body"]["content"] for s in gewe.sent] == ["Dear Li, our spring offer is ready."]
    ledger = CostLedger.objects.get(request_id=f"sop-delivery-{delivery.pk}")
    assert ledger.org_id == org.pk and ledger.sop_run_id == delivery.run_id
    assert ledger.wechat_account_id == account.pk and ledger.input_tokens > 0
    assert ledger.cost > 0


def test_ai_error_is_retried_without_double_billing(org, account, tick, gewe, simulators_clean):
    openai = simulators_clean["openai"]
    openai.add_fault("error", status=500, times=10)
    app = AIAppFactory(org=org, base_url=simulators_clean.urls["openai"], api_key=SIM_OPENAI_KEY)
    make_contact(account, "wxid_ai")
    plan = make_plan(org, [account], ai_app=app, steps=[{"kind": "ai", "ai_prompt": "hi"}])
    services.plan_activate(org=org, plan_id=plan.pk)
    tick(org)
    delivery = plan.deliveries.get()
    assert delivery.status == S.SCHEDULED and delivery.attempts == 1
    assert "ai_error" in delivery.reason
    openai.reset()
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        tick(org)
    delivery.refresh_from_db()
    assert delivery.status == S.SENT and len(gewe.sent) == 1
    assert CostLedger.objects.filter(request_id=f"sop-delivery-{delivery.pk}").count() == 1


# -- quiet hours ---------------------------------------------------------------------------


def test_plan_quiet_hours_defer_and_override_the_accounts(org, account, tick, gewe):
    WeChatAccount.objects.filter(pk=account.pk).update(
        quiet_hours_start=dt.time(0, 0), quiet_hours_end=dt.time(23, 59)
    )
    make_contact(account, "wxid_q")
    plan = make_plan(
        org,
        [account],
        quiet_hours_mode="custom",
        quiet_hours_start=dt.time(22, 0),
        quiet_hours_end=dt.time(8, 0),
    )
    night = utc(2025, 6, 1, 15, 0)  # 23:00 Shanghai
    with time_machine.travel(night, tick=False):
        services.plan_activate(org=org, plan_id=plan.pk)
        result = tick(org)
    assert result.deferred == 1 and gewe.sent == []
    assert plan.deliveries.get().due_at == utc(2025, 6, 2, 0, 0)  # 08:00 Shanghai
    with time_machine.travel(utc(2025, 6, 2, 0, 0), tick=False):
        tick(org)
    # The plan's own hours replace the account's (sent urgent through the pipeline).
    assert len(gewe.sent) == 1 and plan.deliveries.get().message.is_urgent


def test_account_quiet_hours_apply_by_default(org, account, tick, gewe):
    WeChatAccount.objects.filter(pk=account.pk).update(
        quiet_hours_start=dt.time(22, 0), quiet_hours_end=dt.time(8, 0)
    )
    make_contact(account, "wxid_q2")
    plan = make_plan(org, [account])
    with time_machine.travel(utc(2025, 6, 1, 15, 0), tick=False):
        services.plan_activate(org=org, plan_id=plan.pk)
        tick(org)
    delivery = plan.deliveries.get()
    assert delivery.status == S.QUEUED and gewe.sent == []
    assert delivery.message.not_before == utc(2025, 6, 2, 0, 0)


# -- skipped contacts ----------------------------------------------------------------------


def test_contacts_that_stop_matching_are_skipped_with_a_reason(org, account, tick, gewe):
    lead = Tag.objects.create(org=org, name="lead")
    vip = Tag.objects.create(org=org, name="vip")
    removed = make_contact(account, "wxid_gone")
    blocked = make_contact(account, "wxid_blocked")
    untagged = make_contact(account, "wxid_untagged")
    no_vip = make_contact(account, "wxid_novip")
    ok = make_contact(account, "wxid_ok")
    for c in (removed, blocked, untagged, no_vip, ok):
        c.tags.add(lead)
    ok.tags.add(vip)
    plan = make_plan(
        org,
        [account],
        target_type="tag",
        steps=[{"kind": "text", "text": "vip only", "condition": "has_tag", "condition_tag": vip}],
    )
    plan.include_tags.set([lead])
    services.plan_activate(org=org, plan_id=plan.pk)
    Contact.objects.filter(pk=removed.pk).update(removed_at=timezone.now())
    Contact.objects.filter(pk=blocked.pk).update(is_blocked=True)
    untagged.tags.remove(lead)
    tick(org)
    reasons = dict(plan.deliveries.values_list("contact__wxid", "reason"))
    assert reasons == {
        "wxid_gone": "contact_removed",
        "wxid_blocked": "contact_blocked",
        "wxid_untagged": "no_longer_matches",
        "wxid_novip": "condition_not_met",
        "wxid_ok": "",
    }
    assert [s["to"] for s in gewe.sent] == ["wxid_ok"]


# -- dry run and estimate ------------------------------------------------------------------


def test_dry_run_renders_and_sends_nothing(org, account, contacts, gewe):
    plan = make_plan(
        org,
        [account],
        steps=[
            {"kind": "text", "text": "Hi {nickname} from {account_name} {unknown}"},
            {"kind": "link", "url": "https://shop.example.com", "title": "Shop", "delay_days": 1},
        ],
    )
    items = services.plan_dry_run(org=org, plan_id=plan.pk, limit=4)
    assert len(items) == 4
    assert items[0]["text"] == f"Hi C0 from {account.nickname or account.name} {{unknown}}"
    assert {i["step_order"] for i in items} == {0, 1}
    assert SopDelivery.objects.count() == 0 and Message.objects.count() == 0
    assert gewe.sent == []


def test_estimate_spreads_messages_over_account_limits(org, account):
    for i in range(100):
        make_contact(account, f"wxid_e{i}")
    WeChatAccount.objects.filter(pk=account.pk).update(send_limit_per_minute=10)
    plan = make_plan(
        org,
        [account],
        steps=[{"kind": "text", "text": "a"}, {"kind": "text", "text": "b", "delay_days": 1}],
    )
    start = utc(2025, 6, 1, 0, 0)
    with time_machine.travel(start, tick=False):
        estimate = services.plan_estimate(org=org, plan_id=plan.pk)
    assert estimate["targets"] == 100 and estimate["messages"] == 200
    assert estimate["send_duration_seconds"] == 20 * 60
    assert estimate["estimated_finish_at"] == start + timedelta(days=1, minutes=20)


def test_progress_counts_by_status(org, account, contacts, tick):
    plan = make_plan(org, [account])
    services.plan_activate(org=org, plan_id=plan.pk)
    before = selectors.plan_progress(plan=plan)
    assert before["total"] == 3 and before["counts"]["scheduled"] == 3
    tick(org)
    after = selectors.plan_progress(plan=plan)
    assert after["counts"]["sent"] == 3 and after["percent"] == 100.0
    assert after["runs"][0]["counts"]["sent"] == 3
