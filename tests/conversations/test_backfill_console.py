"""Analysis backfills requested in the console (apps/conversations/backfill.py and
admin_backfill.py): validation in words, one at a time per organisation, a run that writes its
progress and result, a worker that died is resumed without billing twice, a failure is shown
redacted and can be run again, and the page follows the roles and the organisation."""

# ruff: noqa: F811 (the history fixture is imported from test_analysis)
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.billing.models import CostLedger
from apps.conversations import backfill
from apps.conversations.models import AnalysisBackfill, Message
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.conversations.test_analysis import history  # noqa: F401 (fixture)
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db
URL = "/admin/conversations/analysisbackfill/"


def _day(org, days_ago: int):
    return (timezone.now() - timedelta(days=days_ago)).astimezone(org.tzinfo).date()


def _member(org, role):
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=role)
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(user)
    return user, client


def test_requests_are_checked_and_one_runs_at_a_time(org, other_org, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # keep it queued: no broker call in on_commit
    with pytest.raises(ApplicationError, match="before the first day"):
        backfill.backfill_check(org=org, first_day=_day(org, 1), last_day=_day(org, 3))
    with pytest.raises(ApplicationError, match="future"):
        backfill.backfill_check(org=org, first_day=_day(org, -2), last_day=_day(org, -2))
    with pytest.raises(ApplicationError, match="at most 366 days"):
        backfill.backfill_check(org=org, first_day=_day(org, 400), last_day=_day(org, 1))
    first = AnalysisBackfill.objects.create(org=org, first_day=_day(org, 3), last_day=_day(org, 1))
    with pytest.raises(ConflictError):
        backfill.backfill_check(org=org, first_day=_day(org, 3), last_day=_day(org, 1))
    # Another organisation's backfill does not hold this one back, and vice versa.
    backfill.backfill_check(org=other_org, first_day=_day(org, 3), last_day=_day(org, 1))
    assert first.state == AnalysisBackfill.State.QUEUED


def test_a_run_writes_progress_and_result_and_a_redelivery_does_nothing(
    org,
    history,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        item = backfill.backfill_request(org=org, first_day=_day(org, 4), last_day=_day(org, 1))
    item.refresh_from_db()
    assert item.state == AnalysisBackfill.State.DONE
    assert (item.total, item.done, item.analysed, item.failed) == (25, 25, 25, 0)
    assert item.finished_at is not None
    assert Message.objects.filter(conversation=history).exclude(intent="").count() == 25
    billed = CostLedger.objects.filter(org=org, kind="intent").count()
    assert billed == 25
    # The task delivered again finds nothing to claim.
    assert backfill.backfill_run(org_id=org.pk, backfill_id=item.pk) == "skipped"
    assert CostLedger.objects.filter(org=org, kind="intent").count() == billed


def test_a_dead_worker_is_resumed_without_billing_twice(
    org,
    history,
    django_capture_on_commit_callbacks,
):
    item = AnalysisBackfill.objects.create(org=org, first_day=_day(org, 4), last_day=_day(org, 1))
    # The first worker analysed 10 messages and died (no progress for longer than allowed).
    ids = list(
        Message.objects.filter(conversation=history, sender_kind="customer")
        .order_by("id")
        .values_list("id", flat=True)[:10]
    )
    from apps.conversations.analysis import analysis_backfill

    start = timezone.now() - timedelta(days=5)
    analysis_backfill(org=org, start=start, end=timezone.now(), message_ids=ids)
    stale = timezone.now() - backfill.STALE_AFTER - timedelta(seconds=1)
    AnalysisBackfill.objects.filter(pk=item.pk).update(
        state=AnalysisBackfill.State.RUNNING, heartbeat_at=stale, done=10, total=25
    )
    with django_capture_on_commit_callbacks(execute=True):
        resumed = backfill.backfills_resume_stale_all_orgs()
    assert resumed == 1
    item.refresh_from_db()
    assert item.state == AnalysisBackfill.State.DONE
    assert item.analysed == 15  # only what was left
    assert CostLedger.objects.filter(org=org, kind="intent").count() == 25
    assert Message.objects.filter(conversation=history).exclude(intent="").count() == 25


def test_a_failure_is_shown_redacted_and_can_run_again(
    org,
    history,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from apps.conversations import analysis

    def boom(**kwargs):
        raise RuntimeError("provider said no to key sk-live-secret-123456")

    from apps.core.secrets import register_secret

    monkeypatch.setattr(analysis, "analysis_backfill", boom)
    register_secret("sk-live-secret-123456")  # as the AI app's key is when it is loaded
    with django_capture_on_commit_callbacks(execute=True):
        item = backfill.backfill_request(org=org, first_day=_day(org, 4), last_day=_day(org, 1))
    item.refresh_from_db()
    assert item.state == AnalysisBackfill.State.FAILED
    assert item.error.startswith("RuntimeError") and "sk-live-secret-123456" not in item.error
    monkeypatch.undo()
    _user, client = _member(org, Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(
            URL, {"action": "action_retry", "_selected_action": [item.pk]}, follow=True
        ).content.decode()
    assert "已重新排队" in page
    item.refresh_from_db()
    assert item.state == AnalysisBackfill.State.DONE and item.analysed == 25


def test_the_console_page_in_chinese_for_admins_and_managers(
    org,
    other_org,
    history,
    django_capture_on_commit_callbacks,
):
    foreign = AnalysisBackfill.objects.create(
        org=other_org, first_day=_day(org, 9), last_day=_day(org, 8)
    )
    _admin, client = _member(org, Role.ADMIN)
    form = client.get(f"{URL}add/").content.decode()
    assert "第一天" in form and "重新分析" in form
    refused = client.post(
        f"{URL}add/", {"first_day": _day(org, 1), "last_day": _day(org, 3), "mode": ""}
    )
    assert refused.status_code == 200
    assert "最后一天早于第一天" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            f"{URL}add/",
            {"first_day": _day(org, 4), "last_day": _day(org, 1), "mode": "intent"},
        )
    assert created.status_code == 302
    item = AnalysisBackfill.objects.get(org=org)
    assert item.mode == "intent" and item.state == AnalysisBackfill.State.DONE
    listing = client.get(URL).content.decode()
    assert "25 / 25（100%）" in listing and "已完成" in listing and "仅意图" in listing
    assert client.get(f"{URL}{foreign.pk}/change/").status_code in (302, 404)

    _manager, manager = _member(org, Role.MANAGER)
    assert manager.get(URL).status_code == 200
    assert manager.get(f"{URL}add/").status_code == 403
    _viewer, viewer = _member(org, Role.VIEWER)
    assert viewer.get(URL).status_code == 403


def test_the_list_refreshes_itself_only_while_one_is_active(org, settings):
    _admin, client = _member(org, Role.ADMIN)
    assert 'http-equiv="refresh"' not in client.get(URL).content.decode()
    AnalysisBackfill.objects.create(org=org, first_day=_day(org, 3), last_day=_day(org, 1))
    page = client.get(URL).content.decode()
    assert 'http-equiv="refresh"' in page and "排队中" in page


def test_a_long_backfill_continues_in_a_fresh_task_at_the_time_limit(
    org, history, monkeypatch, django_capture_on_commit_callbacks
):
    from celery.exceptions import SoftTimeLimitExceeded

    from apps.conversations import analysis

    real = analysis.analysis_backfill
    calls = []

    def first_call_times_out(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SoftTimeLimitExceeded()  # the worker's soft limit, mid-range
        return real(**kwargs)

    monkeypatch.setattr(analysis, "analysis_backfill", first_call_times_out)
    with django_capture_on_commit_callbacks(execute=True):
        item = backfill.backfill_request(org=org, first_day=_day(org, 4), last_day=_day(org, 1))
    item.refresh_from_db()
    assert len(calls) == 2
    assert item.state == AnalysisBackfill.State.DONE and item.analysed == 25


def test_the_task_with_another_organisations_id_touches_nothing(org, other_org, history):
    item = AnalysisBackfill.objects.create(org=org, first_day=_day(org, 4), last_day=_day(org, 1))
    assert backfill.backfill_run(org_id=other_org.pk, backfill_id=item.pk) == "skipped"
    item.refresh_from_db()
    assert item.state == AnalysisBackfill.State.QUEUED and item.started_at is None
    assert not Message.objects.filter(conversation=history).exclude(intent="").exists()
    with pytest.raises(NotFoundError):
        backfill.backfill_retry(org=other_org, backfill_id=item.pk)
