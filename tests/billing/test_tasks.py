import datetime as dt

import pytest
import time_machine

from apps.billing import services, tasks
from apps.billing.models import Kind, Reservation

pytestmark = pytest.mark.django_db


def _hold(org, request_id):
    return services.reserve(
        org=org,
        provider="p",
        model="none",
        kind=Kind.CHAT,
        estimated_input_tokens=10,
        estimated_output_tokens=10,
        request_id=request_id,
    )


def test_expiry_task_runs_twice_and_expires_once(org, other_org, settings):
    settings.BILLING_RESERVATION_TTL_SECONDS = 30
    start = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        stale_a = _hold(org, "a")
        stale_b = _hold(other_org, "b")
    with time_machine.travel(start + dt.timedelta(seconds=20), tick=False):
        live = _hold(org, "live")
    with time_machine.travel(start + dt.timedelta(seconds=31), tick=False):
        assert tasks.reservations_expire_all_orgs.delay().get() == 2
        assert tasks.reservations_expire_all_orgs.delay().get() == 0
    statuses = dict(Reservation.objects.values_list("request_id", "status"))
    assert statuses == {"a": "expired", "b": "expired", "live": "held"}
    for resv in (stale_a, stale_b, live):
        resv.refresh_from_db()
    assert stale_a.finished_at == start + dt.timedelta(seconds=31)


def test_org_task_touches_only_its_org(org, other_org, settings):
    settings.BILLING_RESERVATION_TTL_SECONDS = 1
    start = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        _hold(org, "mine")
        _hold(other_org, "theirs")
    with time_machine.travel(start + dt.timedelta(seconds=5), tick=False):
        assert tasks.reservations_expire.delay(org_id=org.id).get() == 1
        assert tasks.reservations_expire.delay(org_id=org.id).get() == 0
    assert Reservation.objects.get(org=other_org).status == Reservation.Status.HELD


def test_org_task_for_a_missing_org_is_a_no_op():
    assert tasks.reservations_expire.delay(org_id=987654).get() == 0
