"""The console's reports page: figures by name, roles, the active organisation only."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.orgs.models import Role
from tests.accounts.factories import DEFAULT_PASSWORD
from tests.reports import history

pytestmark = pytest.mark.django_db

URL = "/admin/reports/dailystat/"
RANGE = {"start": str(history.DAY), "end": str(history.DAY)}


def _client(user) -> Client:
    client = Client()
    assert client.login(username=user.email, password=DEFAULT_PASSWORD)
    return client


def test_manager_sees_the_organisations_figures_by_name(org, built):
    response = _client(built.manager).get(URL, RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Agent One", "Agent Two", "Sales phone", "Welcome", "Sales AI", 'class="chart"'):
        assert text in html, text
    assert "¥0.02" in html  # total cost, two decimals
    assert "¥0.0123" in html  # cost per AI answer, four decimals


def test_agent_sees_only_their_own_figures(org, built):
    response = _client(built.agent1).get(URL, {**RANGE, "agent": built.agent2.pk})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Agent One" in html
    assert "Agent Two" not in html
    assert 'name="agent"' not in html  # no agent picker for agents


def test_viewer_reads_the_organisations_reports(org, built, make_member):
    """Viewers see everything of the organisation read-only (issue 15), reports included."""
    viewer = make_member(Role.VIEWER)
    response = _client(viewer).get(URL, RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Agent One" in html and "Agent Two" in html  # the organisation's, not "their own"
    assert 'name="agent"' in html  # and they may filter by agent


def test_csv_download_from_the_page(org, built):
    response = _client(built.manager).get(f"{URL}export/agents/", RANGE)
    assert response.status_code == 200
    assert "Agent One" in response.content.decode("utf-8-sig")
    assert _client(built.manager).get(f"{URL}export/nope/", RANGE).status_code == 404


def test_other_organisations_figures_and_ids_stay_out(
    org, other_org, built, make_member, django_capture_on_commit_callbacks, refresh
):
    with django_capture_on_commit_callbacks(execute=True):
        theirs = history.build(other_org, make_member, prefix="Rival ")
    refresh()
    html = _client(built.manager).get(URL, RANGE).content.decode()
    assert "Rival" not in html
    for param, value in (("account", theirs.account.pk), ("label", theirs.label.pk)):
        response = _client(built.manager).get(URL, {**RANGE, param: value})
        assert response.status_code == 404
        response = _client(built.manager).get(f"{URL}export/overview/", {**RANGE, param: value})
        assert response.status_code == 404


def test_home_dashboard_has_the_reports_card(org, built):
    import time_machine

    with time_machine.travel(history.at(23), tick=False):
        html = _client(built.manager).get("/admin/").content.decode()
        agent_html = _client(built.agent1).get("/admin/").content.decode()
    assert 'data-card="reports"' in html
    assert "/admin/reports/dailystat/?span=7" in html
    assert 'data-card="reports"' in agent_html  # their own figures


def test_dashboard_block_figures(org, built):
    import time_machine

    from apps.reports import selectors

    with time_machine.travel(history.at(23), tick=False):
        block = selectors.dashboard_block(org=org, user_id=built.manager.pk, role="manager")
        mine = selectors.dashboard_block(org=org, user_id=built.agent1.pk, role="agent")
        viewer = selectors.dashboard_block(org=org, user_id=built.agent1.pk, role="viewer")
    assert block["conversations_started"] == 8
    assert block["fully_automated_percent"] == 12  # 1 of 8
    assert block["handoffs"] == 7
    assert block["handoff_wait_p50"] == 450.0
    assert mine["own_only"] and mine["conversations_started"] == 4  # C2, C4, C5, C7
    assert not viewer["own_only"] and viewer["conversations_started"] == 8
