"""The console in a real headless Chromium, per role and in Chinese: each role logs in through
the login form (no is_staff), sees exactly its menu, every page of its menu answers without
4xx/5xx or JavaScript errors (a crawler), and no raw code or English fragment is on the page.
Screenshots of every page go to var/screenshots/console/ (and /tmp/shots/console/ when it exists).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from apps.orgs.models import Role
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.browser.test_admin_pages import browser_page, console_login
from tests.console.test_chinese import CODE_WORDS, FORBIDDEN
from tests.console.test_roles import (
    OPTIONAL_ITEMS,
    ORG_MENU,
    expected_menu,
    populated,  # noqa: F401 (fixture)
)
from tests.orgs.factories import MembershipFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("chromium"),
        reason="needs Debian's chromium (installed by .ci/run: apt-get install chromium)",
    ),
]

ROLES = [Role.OWNER, Role.MANAGER, Role.AGENT, Role.VIEWER]


def _shot_dirs() -> list[Path]:
    dirs = [settings.VAR_DIR / "screenshots" / "console"]
    if Path("/tmp/shots").is_dir():
        dirs.append(Path("/tmp/shots/console"))
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    return dirs


def _chinese_menu(role) -> dict[str, list[str]]:
    from django.utils.translation import gettext

    with translation.override("zh-hans"):
        return {
            gettext(group): [gettext(item) for item in items]
            for group, items in expected_menu(role).items()
        }


def _optional_chinese() -> set[str]:
    from django.utils.translation import gettext

    with translation.override("zh-hans"):
        return {gettext(item) for item in OPTIONAL_ITEMS}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_logs_in_sees_its_menu_and_every_page_works(live_server, org, populated, role):  # noqa: F811
    user = UserFactory(email=f"{role}@example.com", default_org=org)
    MembershipFactory(org=org, user=user, role=role)
    expected = _chinese_menu(role)
    optional = _optional_chinese()
    assert ORG_MENU  # the English menu the expectation is built from
    shots = _shot_dirs()

    with browser_page("zh-hans") as page:
        page.goto(f"{live_server.url}/")  # "/" sends an anonymous visitor to the login page
        assert "/admin/login/" in page.url
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", DEFAULT_PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        menu = page.evaluate(
            """() => Array.from(document.querySelectorAll('#nav-sidebar-apps ol')).map(ol => [
                (ol.previousElementSibling || {innerText: ''}).innerText.trim(),
                Array.from(ol.querySelectorAll('li a')).map(a => [
                    a.querySelector('span:not(.material-symbols-outlined)').innerText.trim(),
                    a.getAttribute('href')])
            ])"""
        )
        shown = {}
        for title, items in menu:
            titles = [t for t, _href in items if t not in optional]
            if titles:
                shown[title] = titles
        assert shown == expected
        problems = []
        for _title, items in menu:
            for item_title, href in items:
                response = page.goto(f"{live_server.url}{href}")
                page.wait_for_load_state("networkidle")
                status = response.status if response else 0
                if status >= 400:
                    problems.append(f"{href}: HTTP {status}")
                    continue
                text = page.inner_text("body")
                problems += [f"{href}: {n!r}" for n in FORBIDDEN if n in text]
                problems += [f"{href}: {m.group(0)!r}" for m in CODE_WORDS.finditer(text)]
                name = f"{role}_" + (href.strip("/").replace("/", "_") or "root") + ".png"
                for directory in shots:
                    page.screenshot(path=str(directory / name))
        assert problems == []
        assert page.errors == []


def test_the_home_page_updates_when_a_customer_waits(live_server, org, populated):  # noqa: F811
    """The dashboard's cards re-render from the server (the live client triggers the same
    fetch on every relevant event)."""
    from apps.conversations.models import Conversation

    user = UserFactory(email="live@example.com", default_org=org)
    MembershipFactory(org=org, user=user, role=Role.MANAGER)
    with browser_page("zh-hans") as page:
        console_login(page, live_server, user)
        assert page.inner_text("[data-value=waiting-count]") == "1"
        cards_url = page.get_attribute("#console-dashboard", "data-cards-url")
        assert cards_url
    Conversation.objects.filter(org=org).update(status=Conversation.Status.RESOLVED)
    with browser_page("zh-hans") as page:
        console_login(page, live_server, user)
        html = page.evaluate(
            "async (url) => (await fetch(url, {credentials: 'same-origin'})).text()", cards_url
        )
        assert 'data-value="waiting-count">0<' in html
