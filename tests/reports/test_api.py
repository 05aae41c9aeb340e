"""The report endpoints: shapes, CSV, roles, cross-organisation isolation."""

from __future__ import annotations

import pytest

from apps.orgs.models import Role
from tests.conftest import client_for
from tests.reports import history

pytestmark = pytest.mark.django_db

NAMES = ["overview", "conversations", "agents", "accounts", "sop", "cost"]
RANGE = {"start": str(history.DAY), "end": str(history.DAY)}


@pytest.mark.parametrize("name", NAMES)
def test_every_report_answers_managers_with_the_orgs_figures(org, built, name):
    response = client_for(built.manager, org).get(f"/api/v1/reports/{name}/", RANGE)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["range"]["start"] == str(history.DAY)
    assert data["range"]["agent"] is None


def test_overview_figures_through_the_api(org, built):
    data = client_for(built.manager, org).get("/api/v1/reports/overview/", RANGE).json()
    assert data["summary"]["inbound_messages"] == 9
    assert data["summary"]["handoff_wait_p90"] == 1020.0
    assert data["summary"]["total_cost"] == "0.02"
    assert [d["inbound_messages"] for d in data["series"]] == [9]


@pytest.mark.parametrize("name", NAMES)
def test_csv_export_of_every_report(org, built, name):
    response = client_for(built.manager, org).get(f"/api/v1/reports/{name}/export/", RANGE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode("utf-8-sig")
    lines = body.strip().splitlines()
    assert len(lines) >= 2  # a header and at least one row


def test_agents_csv_names_people_not_ids(org, built):
    body = client_for(built.manager, org).get("/api/v1/reports/agents/export/", RANGE)
    text = body.content.decode("utf-8-sig")
    assert "Agent One" in text and "Agent Two" in text


def test_an_agent_asking_for_another_agents_figures_gets_their_own(org, built):
    client = client_for(built.agent1, org)
    data = client.get("/api/v1/reports/overview/", {**RANGE, "agent": built.agent2.pk}).json()
    assert data["range"]["agent"] == built.agent1.pk
    assert data["summary"]["inbound_messages"] == 5  # agent 1's conversations, not agent 2's
    rows = client.get("/api/v1/reports/agents/", {**RANGE, "agent": built.agent2.pk}).json()
    assert [r["agent"] for r in rows["rows"]] == ["Agent One"]
    csv = client.get("/api/v1/reports/agents/export/", RANGE).content.decode("utf-8-sig")
    assert "Agent One" in csv and "Agent Two" not in csv


def test_an_agent_sees_sop_figures_of_their_own_accounts_only(org, built):
    data = client_for(built.agent1, org).get("/api/v1/reports/sop/", RANGE).json()
    assert data["summary"]["sent"] == 0  # the account belongs to the manager
    mine = client_for(built.manager, org).get("/api/v1/reports/sop/", RANGE).json()
    assert mine["summary"]["sent"] == 2


def test_viewers_read_the_organisations_figures(org, built, make_member):
    viewer = make_member(Role.VIEWER)
    client = client_for(viewer, org)
    viewed = client.get("/api/v1/reports/overview/", RANGE)
    managed = client_for(built.manager, org).get("/api/v1/reports/overview/", RANGE)
    assert viewed.status_code == 200
    assert viewed.json()["summary"] == managed.json()["summary"]
    rows = client.get("/api/v1/reports/agents/", RANGE).json()["rows"]
    assert {r["agent"] for r in rows} >= {"Agent One", "Agent Two"}


def test_anonymous_requests_are_refused(anon_client):
    assert anon_client.get("/api/v1/reports/overview/").status_code == 401


def test_invalid_ranges_answer_400(org, built):
    client = client_for(built.manager, org)
    response = client.get("/api/v1/reports/overview/", {"start": "2026-11-05", "end": "2026-11-01"})
    assert response.status_code == 400
    assert "end" in response.json()["error"]["fields"]
    response = client.get("/api/v1/reports/overview/", {"start": "2020-01-01", "end": "2026-11-01"})
    assert response.status_code == 400


@pytest.mark.parametrize("name", NAMES)
def test_other_organisation_sees_none_of_our_figures(
    org, other_org, built, make_member, django_capture_on_commit_callbacks, refresh, name
):
    """Both organisations have the same history; each sees only its own rows and names, and
    filters with the other organisation's ids are refused."""
    with django_capture_on_commit_callbacks(execute=True):
        theirs = history.build(other_org, make_member, prefix="Rival ")
    refresh()
    ours = client_for(built.manager, org).get(f"/api/v1/reports/{name}/", RANGE)
    body = ours.content.decode()
    assert ours.status_code == 200
    assert "Rival" not in body
    # The other org's manager sees their own figures only (same counts, their names).
    response = client_for(theirs.manager, other_org).get(f"/api/v1/reports/{name}/", RANGE)
    assert response.status_code == 200
    assert "Agent One" not in response.content.decode().replace("Rival Agent One", "")
    for param, value in (
        ("account", theirs.account.pk),
        ("agent", theirs.agent1.pk),
        ("ai_app", theirs.app.pk),
        ("label", theirs.label.pk),
    ):
        refused = client_for(built.manager, org).get(
            f"/api/v1/reports/{name}/", {**RANGE, param: value}
        )
        assert refused.status_code == 400, (param, refused.content)
        refused = client_for(built.manager, org).get(
            f"/api/v1/reports/{name}/export/", {**RANGE, param: value}
        )
        assert refused.status_code == 400


def test_outsider_with_our_org_header_is_refused(org, built, outsider):
    response = client_for(outsider, org).get("/api/v1/reports/overview/")
    assert response.status_code in (403, 404)
