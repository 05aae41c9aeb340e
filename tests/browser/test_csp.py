"""Content-Security-Policy (issue 22): every page carries it, the workspace runs with no inline
script or eval, and no page the members use breaks under it (real Chromium, console watched)."""

from __future__ import annotations

import shutil

import pytest
from django.test import Client

from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.browser.test_admin_pages import browser_page
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _directives(header: str) -> dict[str, list[str]]:
    parts = [part.strip().split() for part in header.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


def _signed_in(org) -> Client:
    owner = UserFactory(email="csp-owner@example.com", default_org=org)
    MembershipFactory(org=org, user=owner, role=Role.OWNER)
    client = Client()
    client.force_login(owner)
    return client


def test_every_page_has_a_policy_with_no_foreign_script_and_no_framing(org):
    client = _signed_in(org)
    for path in ("/admin/", "/api/docs/", "/healthz"):
        policy = _directives(client.get(path)["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["object-src"] == ["'none'"]
        assert all(source.startswith("'") for source in policy["script-src"]), policy
        assert policy["connect-src"] == ["'self'"]


def test_the_workspace_allows_no_inline_script_and_no_eval(org):
    response = _signed_in(org).get("/workspace/")
    assert response.status_code == 200
    policy = _directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_pages_run_under_the_policy_without_violations(live_server, org):
    client = _signed_in(org)
    session = client.cookies["sessionid"].value
    violations: list[str] = []
    with browser_page() as page:
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
        for path in ("/admin/", "/workspace/", "/api/docs/"):
            response = page.goto(live_server.url + path)
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("networkidle")
        # The workspace opened its WebSocket under connect-src 'self'.
        page.goto(live_server.url + "/workspace/")
        page.wait_for_timeout(1500)
        assert page.errors == []
    assert violations == []
