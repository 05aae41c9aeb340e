"""SOP admin: pages render with progress bars, actions go through the services, staff see only
their organisations' plans, runs and deliveries."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.orgs.models import Role
from apps.sop import services
from apps.sop.models import SopPlan
from tests.accounts.factories import UserFactory
from tests.orgs.factories import MembershipFactory
from tests.sop.conftest import make_plan
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_manager(org):
    user = UserFactory(is_staff=True, default_org=org)
    MembershipFactory(org=org, user=user, role=Role.MANAGER)
    return user


@pytest.fixture
def plans(org, other_org):
    mine_account = WeChatAccountFactory(org=org)
    ContactFactory(account=mine_account, org=org)
    mine = make_plan(org, [mine_account], name="Mine")
    services.plan_activate(org=org, plan_id=mine.pk)
    their_account = WeChatAccountFactory(org=other_org)
    ContactFactory(account=their_account, org=other_org)
    theirs = make_plan(other_org, [their_account], name="Theirs")
    services.plan_activate(org=other_org, plan_id=theirs.pk)
    return mine, theirs


def test_pages_render_with_progress_bars(client, staff_manager, plans):
    mine, theirs = plans
    client.force_login(staff_manager)
    page = client.get(reverse("admin:sop_sopplan_changelist"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Mine" in body and "Theirs" not in body and "0/1" in body
    change = client.get(reverse("admin:sop_sopplan_change", args=[mine.pk]))
    assert change.status_code == 200 and "finish" in change.content.decode()
    for name in ("soprun", "sopdelivery"):
        listing = client.get(reverse(f"admin:sop_{name}_changelist"))
        assert listing.status_code == 200
        assert "Theirs" not in listing.content.decode()


def test_other_orgs_plan_is_not_reachable(client, staff_manager, plans):
    _mine, theirs = plans
    client.force_login(staff_manager)
    response = client.get(reverse("admin:sop_sopplan_change", args=[theirs.pk]))
    assert response.status_code in (302, 404)
    run = theirs.runs.get()
    assert client.get(reverse("admin:sop_soprun_change", args=[run.pk])).status_code in (302, 404)


def test_actions_call_the_services_and_stay_in_org(client, staff_manager, plans):
    mine, theirs = plans
    client.force_login(staff_manager)
    url = reverse("admin:sop_sopplan_changelist")
    client.post(url, {"action": "pause", "_selected_action": [mine.pk, theirs.pk]})
    assert SopPlan.objects.get(pk=mine.pk).status == "paused"
    assert SopPlan.objects.get(pk=theirs.pk).status == "active"
    client.post(url, {"action": "cancel", "_selected_action": [mine.pk]})
    mine.refresh_from_db()
    assert mine.status == "cancelled"
    assert mine.deliveries.get().reason == "plan_cancelled"


def test_delivery_csv_export_action(client, staff_manager, plans):
    mine, theirs = plans
    client.force_login(staff_manager)
    ids = list(mine.deliveries.values_list("pk", flat=True)) + list(
        theirs.deliveries.values_list("pk", flat=True)
    )
    response = client.post(
        reverse("admin:sop_sopdelivery_changelist"),
        {"action": "export_csv", "_selected_action": ids},
    )
    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[1] == str(mine.pk)


def test_a_step_picks_a_stored_file_of_the_organisation_only(client, staff_manager, plans):
    from apps.media import services as media_services
    from tests.media import samples

    ours = media_services.media_file_create(
        org=plans[0].org, content=samples.png(), name="ours.png"
    )
    theirs = media_services.media_file_create(
        org=plans[1].org, content=samples.png(seed=1), name="theirs.png"
    )
    client.force_login(staff_manager)
    html = client.get(reverse("admin:sop_sopplan_change", args=[plans[0].pk])).content.decode()
    assert '-media_file"' in html  # the step form (or the empty one a new step copies)
    assert f'value="{ours.pk}"' in html and f'value="{theirs.pk}"' not in html
