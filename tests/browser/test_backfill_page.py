"""The analysis backfill page in a real Chromium, in Chinese: an admin sees each backfill's
progress in words, opens the request form and gets a refused range explained (screenshots in
var/screenshots/console/backfill_*.png)."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import AnalysisBackfill
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.browser.test_admin_pages import browser_page, console_login
from tests.browser.test_console import _shot_dirs
from tests.orgs.factories import MembershipFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("chromium"),
        reason="needs Debian's chromium (installed by .ci/run: apt-get install chromium)",
    ),
]


def test_an_admin_follows_and_requests_backfills(live_server, org):
    today = timezone.now().astimezone(org.tzinfo).date()
    AnalysisBackfill.objects.create(
        org=org,
        first_day=today - timedelta(days=30),
        last_day=today - timedelta(days=20),
        mode="intent_sentiment",
        state=AnalysisBackfill.State.DONE,
        total=1200,
        done=1200,
        analysed=1196,
        failed=4,
        finished_at=timezone.now(),
    )
    AnalysisBackfill.objects.create(
        org=org,
        first_day=today - timedelta(days=7),
        last_day=today - timedelta(days=1),
        state=AnalysisBackfill.State.RUNNING,
        total=800,
        done=200,
        analysed=200,
    )
    user = UserFactory(email="admin-backfill@example.com", default_org=org)
    MembershipFactory(org=org, user=user, role=Role.ADMIN)

    with browser_page("zh-hans") as page:
        console_login(page, live_server, user)
        page.goto(f"{live_server.url}/admin/conversations/analysisbackfill/")
        listing = page.inner_text("body")
        for directory in _shot_dirs():
            page.screenshot(path=str(directory / "backfill_list.png"), full_page=True)
        page.goto(f"{live_server.url}/admin/conversations/analysisbackfill/add/")
        page.fill("input[name=first_day]", (today - timedelta(days=1)).isoformat())
        page.fill("input[name=last_day]", (today - timedelta(days=3)).isoformat())
        page.click("button[name=_save]")
        page.wait_for_load_state("networkidle")
        refused = page.inner_text("body")
        for directory in _shot_dirs():
            page.screenshot(path=str(directory / "backfill_add.png"), full_page=True)

    assert "1200 / 1200（100%）" in listing and "200 / 800（25%）" in listing
    assert "已完成" in listing and "运行中" in listing and "意图和情绪" in listing
    assert "每 5 秒自动刷新" in listing
    assert "intent_sentiment" not in listing and "running" not in listing
    assert "最后一天早于第一天" in refused


def test_a_manager_follows_backfills_but_cannot_request_one(live_server, org):
    today = timezone.now().astimezone(org.tzinfo).date()
    AnalysisBackfill.objects.create(
        org=org,
        first_day=today - timedelta(days=3),
        last_day=today - timedelta(days=1),
        state=AnalysisBackfill.State.FAILED,
        error="RuntimeError: 服务商暂时不可用",
        total=40,
        done=12,
        analysed=12,
    )
    user = UserFactory(email="manager-backfill@example.com", default_org=org)
    MembershipFactory(org=org, user=user, role=Role.MANAGER)

    with browser_page("zh-hans") as page:
        console_login(page, live_server, user)
        page.goto(f"{live_server.url}/admin/conversations/analysisbackfill/")
        listing = page.inner_text("body")
        has_add_link = page.locator("a[href$='/analysisbackfill/add/']").count()
        has_actions = page.locator("select[name=action]").count()
        for directory in _shot_dirs():
            page.screenshot(path=str(directory / "backfill_manager.png"), full_page=True)

    assert "失败" in listing and "12 / 40（30%）" in listing
    assert "failed" not in listing
    assert has_add_link == 0 and has_actions == 0  # requesting and re-running are for admins
