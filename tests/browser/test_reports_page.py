"""The reports page in headless Chromium: charts drawn by the theme's Chart.js, tables by
name, in Chinese; screenshots under /tmp/shots/reports/ (or REPORTS_SHOTS_DIR)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from tests.accounts.factories import DEFAULT_PASSWORD
from tests.reports import history

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("REPORTS_SHOTS_DIR", "/tmp/shots/reports"))

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
]


@contextlib.contextmanager
def _page(language: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(
            extra_http_headers={"Accept-Language": language},
            viewport={"width": 1440, "height": 1000},
        )
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        yield page
        browser.close()


def _login(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit], input[type=submit]")
    if "/login/" in page.url:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "login-failed.png"))
    assert "/login/" not in page.url, page.inner_text("body")[:500]


@pytest.mark.parametrize("who", ["manager", "agent1"])
def test_reports_page_renders_charts_and_tables_in_chinese(
    live_server, org, make_member, settings, who
):
    settings.REPORTS_SOP_LOOKBACK_SECONDS = 86400
    h = history.build(org, make_member)
    import time_machine

    from apps.reports import services

    with time_machine.travel(history.at(23), tick=False):
        services.range_rebuild(org=org, start=history.DAY, end=history.DAY)
    user = getattr(h, who)
    user.is_staff = True  # as the other browser tests (the console's login form may ask for it)
    user.save(update_fields=["is_staff"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{live_server.url}/admin/reports/dailystat/?start={history.DAY}&end={history.DAY}"
    with _page("zh-Hans") as page:
        _login(page, live_server, user)
        response = page.goto(url)
        assert response is not None and response.status == 200
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / f"reports-{who}.png"), full_page=True)
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('canvas.chart')].map(c => !!(window.Chart"
            " && Chart.getChart(c)))"
        )
        text = page.inner_text("#reports-page")
        charts = page.locator("canvas.chart").count()
        errors = list(page.errors)
        page.goto(f"{live_server.url}/admin/")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / f"dashboard-{who}.png"), full_page=True)
        has_card = page.locator("[data-card=reports]").count()
    assert errors == []
    assert charts == 3
    assert drawn == [True, True, True]
    assert has_card == 1
    assert "Agent One" in text
    assert "客户消息" in text or "Customer messages" in text
    if who == "agent1":
        assert "Agent Two" not in text
    else:
        assert "Agent Two" in text and "Sales phone" in text
