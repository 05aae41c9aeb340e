"""The admin, as a user sees it: a real headless Chromium (Debian's, driven by Playwright) against
a live server. Logs in through the login form, opens every main page, and fails on a server
error, a JavaScript error or a page without its expected content."""

from __future__ import annotations

import contextlib
import shutil

import pytest
from django.conf import settings

from apps.orgs.models import Role
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.billing.factories import BudgetFactory
from tests.orgs.factories import MembershipFactory
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("chromium"),
        reason="needs Debian's chromium (installed by .ci/run: apt-get install chromium)",
    ),
]

PAGES = [
    ("/admin/", "AI Sales Assistant"),
    ("/admin/wechat_accounts/wechataccount/", "Sales WeChat"),
    ("/admin/wechat_accounts/contact/", "Customer Zhang"),
    ("/admin/conversations/conversation/", "conversation"),
    ("/admin/billing/costledger/usage/", "Acme Sales"),
    ("/admin/monitoring/alert/dashboard/", "Acme Sales"),
    ("/admin/sop/sopplan/", "SOP"),
    ("/admin/integrations/platformconnection/", "connection"),
    ("/api/docs/", "swagger"),
    ("/api/redoc/", "redoc"),
]


@contextlib.contextmanager
def browser_page(language: str = "en"):
    """Playwright's sync API runs an event loop in this thread while it is open, and Django
    refuses database access from there: create the rows first, then open the browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(extra_http_headers={"Accept-Language": language})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        yield page
        browser.close()


def test_staff_manager_logs_in_and_every_admin_page_renders(live_server, org):
    manager = UserFactory(email="manager@example.com", is_staff=True, default_org=org)
    MembershipFactory(org=org, user=manager, role=Role.MANAGER)
    account = WeChatAccountFactory(org=org, name="Sales WeChat")
    ContactFactory(account=account, nickname="Customer Zhang")
    BudgetFactory(org=org)

    with browser_page() as page:
        console_login(page, live_server, manager)
        _visit_all(page, live_server)


def console_login(page, live_server, user) -> None:
    """Sign ``user`` in through the console's login form (the default test password)."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def _visit_all(page, live_server) -> None:
    screenshots = settings.VAR_DIR / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    for path, expected in PAGES:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, (path, response and response.status)
        page.wait_for_load_state("networkidle")
        content = page.content()
        assert expected.lower() in content.lower(), path
        assert "Server Error" not in content and "Traceback" not in content, path
        page.screenshot(path=str(screenshots / (path.strip("/").replace("/", "_") + ".png")))
    assert page.errors == []


def test_another_organisations_rows_are_not_on_the_page(live_server, org, other_org):
    manager = UserFactory(email="manager2@example.com", is_staff=True, default_org=org)
    MembershipFactory(org=org, user=manager, role=Role.MANAGER)
    WeChatAccountFactory(org=org, name="Our Device")
    WeChatAccountFactory(org=other_org, name="Their Device")

    with browser_page() as page:
        console_login(page, live_server, manager)
        page.goto(f"{live_server.url}/admin/wechat_accounts/wechataccount/")
        text = page.inner_text("body")
    assert "Our Device" in text
    assert "Their Device" not in text


def test_admin_speaks_simplified_chinese(live_server, org):
    manager = UserFactory(email="manager3@example.com", is_staff=True, default_org=org)
    MembershipFactory(org=org, user=manager, role=Role.MANAGER)

    with browser_page("zh-hans") as page:
        console_login(page, live_server, manager)
        assert "AI 销售助手" in page.inner_text("body")
        page.goto(f"{live_server.url}/admin/billing/costledger/usage/")
        assert "用量" in page.inner_text("body")


def test_the_moment_form_is_fields_in_chinese_not_json(live_server, org):
    manager = UserFactory(email="manager4@example.com", is_staff=True, default_org=org)
    MembershipFactory(org=org, user=manager, role=Role.MANAGER)
    WeChatAccountFactory(org=org, name="销售一号")

    with browser_page("zh-hans") as page:
        console_login(page, live_server, manager)
        page.goto(f"{live_server.url}/admin/wechat_accounts/momentpost/add/")
        page.wait_for_load_state("networkidle")
        body = page.inner_text("body")
        for label in ("图片地址", "上传图片", "链接标题", "链接地址", "谁可以看"):
            assert label in body, label
        assert page.locator("textarea[name=images], textarea[name=link]").count() == 0
        assert page.locator("input[type=file][name=image_uploads][multiple]").count() == 1
        screenshots = settings.VAR_DIR / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / "moment_form.png"), full_page=True)
        assert page.errors == []


def test_uploads_and_sop_steps_with_a_file_in_chinese(live_server, org):
    """An agent uploads in 文件 → 添加; a manager's SOP plan shows its steps with the file picker
    (inlines were hidden from members before)."""
    from apps.media import services as media_services
    from tests.media import samples
    from tests.sop.conftest import make_plan

    agent = UserFactory(email="agent5@example.com", default_org=org)
    MembershipFactory(org=org, user=agent, role=Role.AGENT)
    manager = UserFactory(email="manager5@example.com", default_org=org)
    MembershipFactory(org=org, user=manager, role=Role.MANAGER)
    media_services.media_file_create(org=org, content=samples.png(), name="价目表.png")
    plan = make_plan(org, [WeChatAccountFactory(org=org, name="销售二号")], name="新客欢迎")
    screenshots = settings.VAR_DIR / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)

    with browser_page("zh-hans") as page:
        console_login(page, live_server, agent)
        page.goto(f"{live_server.url}/admin/media/mediafile/add/")
        page.wait_for_load_state("networkidle")
        body = page.inner_text("body")
        assert "文件" in body and "按文件类型自动判断" in body
        page.screenshot(path=str(screenshots / "media_upload.png"), full_page=True)
        assert page.errors == []

    with browser_page("zh-hans") as page:
        console_login(page, live_server, manager)
        page.goto(f"{live_server.url}/admin/sop/sopplan/{plan.pk}/change/")
        page.wait_for_load_state("networkidle")
        assert page.locator("select[name$='-media_file']").count() >= 1
        options = page.locator("select[name$='-media_file'] option").all_inner_texts()
        assert any("价目表.png" in o for o in options)
        page.screenshot(path=str(screenshots / "sop_plan_steps.png"), full_page=True)
        assert page.errors == []
