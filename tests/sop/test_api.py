"""The SOP API: CRUD with nested steps, life cycle actions, dry run, estimate, progress,
deliveries with filters and CSV, roles, and cross-organisation isolation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.conversations.models import Message
from apps.orgs.models import Role
from apps.sop import services
from apps.sop.models import SopDelivery, SopPlan
from apps.wechat_accounts.models import Tag
from tests.conftest import client_for
from tests.sop.conftest import make_plan
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/sop/plans/"


@pytest.fixture
def offline_account(org):
    return WeChatAccountFactory(org=org, name="Sales A")


@pytest.fixture
def plan_payload(offline_account):
    return {
        "name": "Day 0-7 follow-up",
        "description": "the seed's sop_tasks",
        "accounts": [offline_account.pk],
        "target_type": "friends",
        "trigger": "once",
        "steps": [
            {"kind": "text", "text": "Welcome {nickname}"},
            {"kind": "link", "url": "https://x.example.com", "title": "Case", "delay_days": 3},
        ],
    }


def test_create_with_nested_steps_and_update(api_client, plan_payload, org):
    response = api_client.post(URL, plan_payload, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "draft" and len(data["steps"]) == 2
    assert data["progress"]["total"] == 0
    plan_id, first = data["id"], data["steps"][0]["id"]
    response = api_client.patch(
        f"{URL}{plan_id}/",
        {"steps": [{"id": first, "kind": "text", "text": "Hello {nickname}"}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert [s["text"] for s in response.json()["steps"]] == ["Hello {nickname}"]


def test_validation_errors_use_the_error_shape(api_client, plan_payload):
    plan_payload["trigger"] = "recurring"
    plan_payload["cron"] = "every day"
    plan_payload["steps"] = [{"kind": "image"}]
    response = api_client.post(URL, plan_payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "cron" in error["fields"] or "steps.0.url" in error["fields"]


def test_other_orgs_related_ids_are_rejected(api_client, plan_payload, other_org):
    foreign = WeChatAccountFactory(org=other_org)
    plan_payload["accounts"] = [foreign.pk]
    response = api_client.post(URL, plan_payload, format="json")
    assert response.status_code == 400
    assert "accounts" in response.json()["error"]["fields"]


def test_life_cycle_actions(api_client, org, offline_account):
    ContactFactory(account=offline_account, org=org)
    plan = make_plan(org, [offline_account])
    response = api_client.post(f"{URL}{plan.pk}/activate/")
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert response.json()["progress"]["counts"]["scheduled"] == 1
    assert api_client.post(f"{URL}{plan.pk}/activate/").status_code == 409
    assert api_client.post(f"{URL}{plan.pk}/pause/").json()["status"] == "paused"
    assert api_client.post(f"{URL}{plan.pk}/resume/").json()["status"] == "active"
    assert api_client.delete(f"{URL}{plan.pk}/").status_code == 409
    assert api_client.post(f"{URL}{plan.pk}/cancel/").json()["status"] == "cancelled"
    progress = api_client.get(f"{URL}{plan.pk}/progress/").json()
    assert progress["counts"]["skipped"] == 1 and progress["runs"][0]["status"] == "cancelled"
    assert api_client.delete(f"{URL}{plan.pk}/").status_code == 204


def test_dry_run_and_estimate(api_client, org, offline_account):
    ContactFactory(account=offline_account, org=org, nickname="Wang")
    plan = make_plan(org, [offline_account])
    response = api_client.post(f"{URL}{plan.pk}/dry-run/", {"limit": 5}, format="json")
    assert response.status_code == 200
    assert [i["text"] for i in response.json()] == ["Hi Wang"]
    assert SopDelivery.objects.count() == 0 and Message.objects.count() == 0
    estimate = api_client.get(f"{URL}{plan.pk}/estimate/").json()
    assert estimate["targets"] == 1 and estimate["messages"] == 1
    assert api_client.post(f"{URL}{plan.pk}/dry-run/", {"limit": 0}).status_code == 400


def test_deliveries_list_filters_and_csv(api_client, org, offline_account):
    for i in range(3):
        ContactFactory(account=offline_account, org=org, wxid=f"wxid_l{i}")
    plan = make_plan(org, [offline_account])
    services.plan_activate(org=org, plan_id=plan.pk)
    SopDelivery.objects.filter(contact__wxid="wxid_l0").update(status="skipped", reason="x")
    url = f"{URL}{plan.pk}/deliveries/"
    data = api_client.get(url).json()
    assert data["count"] == 3
    assert api_client.get(url, {"status": "skipped"}).json()["count"] == 1
    csv_response = api_client.get(f"{url}export/", {"status": "scheduled"})
    assert csv_response.status_code == 200
    body = csv_response.content.decode()
    assert body.splitlines()[0].startswith("id,plan_id") and len(body.splitlines()) == 3
    assert api_client.get(url, {"format": "csv"}).status_code == 200


def test_list_query_count_is_constant(api_client, org, offline_account):
    for i in range(3):
        make_plan(org, [offline_account], name=f"P{i}")
    with CaptureQueriesContext(connection) as few:
        assert api_client.get(URL).status_code == 200
    for i in range(3, 8):
        make_plan(org, [offline_account], name=f"P{i}")
    with CaptureQueriesContext(connection) as many:
        assert len(api_client.get(URL).json()["results"]) == 8
    assert len(many) == len(few)


def test_agents_read_but_do_not_write(org, make_member, plan_payload, offline_account):
    agent = client_for(make_member(Role.AGENT), org)
    plan = make_plan(org, [offline_account])
    assert agent.get(URL).status_code == 200
    assert agent.post(URL, plan_payload, format="json").status_code == 403
    assert agent.post(f"{URL}{plan.pk}/activate/").status_code == 403


def test_another_orgs_plan_answers_404_everywhere(org, outsider, other_org, offline_account):
    plan = make_plan(org, [offline_account])
    ContactFactory(account=offline_account, org=org)
    services.plan_activate(org=org, plan_id=plan.pk)
    client = client_for(outsider, other_org)
    assert client.get(URL).json()["count"] == 0
    for method, suffix in [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "activate/"),
        ("post", "pause/"),
        ("post", "resume/"),
        ("post", "cancel/"),
        ("post", "dry-run/"),
        ("get", "progress/"),
        ("get", "estimate/"),
        ("get", "deliveries/"),
        ("get", "deliveries/export/"),
    ]:
        response = getattr(client, method)(f"{URL}{plan.pk}/{suffix}", {}, format="json")
        assert response.status_code == 404, (method, suffix, response.status_code)
    delivery_url = f"{URL}{plan.pk}/deliveries/1/"
    assert client.get(delivery_url).status_code == 404
    assert SopPlan.objects.get(pk=plan.pk).status == "active"


def test_deliveries_of_another_org_are_not_listed_under_own_plan(
    api_client, org, other_org, offline_account
):
    ContactFactory(account=offline_account, org=org)
    plan = make_plan(org, [offline_account])
    services.plan_activate(org=org, plan_id=plan.pk)
    foreign_account = WeChatAccountFactory(org=other_org)
    ContactFactory(account=foreign_account, org=other_org)
    foreign = make_plan(other_org, [foreign_account], name="Theirs")
    services.plan_activate(org=other_org, plan_id=foreign.pk)
    assert api_client.get(f"{URL}{foreign.pk}/deliveries/").status_code == 404
    ids = [d["id"] for d in api_client.get(f"{URL}{plan.pk}/deliveries/").json()["results"]]
    assert set(ids) == set(plan.deliveries.values_list("id", flat=True))
    tag = Tag.objects.create(org=other_org, name="theirs")
    response = api_client.patch(f"{URL}{plan.pk}/", {"include_tags": [tag.pk]}, format="json")
    assert response.status_code == 400
