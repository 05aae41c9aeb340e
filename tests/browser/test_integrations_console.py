"""The integrations console in a real Chromium, in Chinese: an admin restarts a platform
connection from the list (one sentence per connection, steps in words) and sets an AI app's
extra settings through fields of their own (screenshots in var/screenshots/console/)."""

from __future__ import annotations

import shutil

import pytest

from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.browser.test_admin_pages import browser_page, console_login
from tests.browser.test_console import _shot_dirs
from tests.fixtures_simulators import SIM_GEWE_TOKEN
from tests.integrations.factories import AIAppFactory, PlatformConnectionFactory
from tests.orgs.factories import MembershipFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("chromium"),
        reason="needs Debian's chromium (installed by .ci/run: apt-get install chromium)",
    ),
]


def test_an_admin_restarts_a_connection_from_the_list(live_server, org, simulators_clean):
    connection = PlatformConnectionFactory(
        org=org, name="华东销售号", base_url=simulators_clean.urls["gewe"], token=SIM_GEWE_TOKEN
    )
    user = UserFactory(email="admin-restart@example.com", default_org=org)
    MembershipFactory(org=org, user=user, role=Role.ADMIN)

    with browser_page("zh-hans") as page:
        console_login(page, live_server, user)
        page.goto(f"{live_server.url}/admin/integrations/platformconnection/")
        page.check(f"input[name=_selected_action][value='{connection.id}']")
        page.select_option("select[name=action]", "restart_connections")
        page.click("button[name=index]")
        page.wait_for_load_state("networkidle")
        text = page.inner_text("body")
        for directory in _shot_dirs():
            page.screenshot(path=str(directory / "restart.png"), full_page=True)

    assert "华东销售号 已重启，工作正常" in text, text[:2000]
    assert "已重新注册回调" in text and "已实时检查" in text
    assert "callback_registered" not in text and "restarted" not in text
    assert simulators_clean["gewe"].requests_to("/tools/setCallback")


def test_an_admin_sets_the_output_cap_variable_without_json(live_server, org):
    app = AIAppFactory(org=org, provider="fastgpt", name="售前知识库")
    user = UserFactory(email="admin-aiapp@example.com", default_org=org)
    MembershipFactory(org=org, user=user, role=Role.ADMIN)

    with browser_page("zh-hans") as page:
        console_login(page, live_server, user)
        page.goto(f"{live_server.url}/admin/integrations/aiapp/{app.id}/change/")
        form_text = page.inner_text("#aiapp_form")
        page.fill("input[name=max_tokens_variable]", "answer cap!")
        page.click("button[name=_save]")
        page.wait_for_load_state("networkidle")
        refused = page.inner_text("body")
        for directory in _shot_dirs():
            page.screenshot(path=str(directory / "aiapp_extra.png"), full_page=True)
        page.fill("input[name=max_tokens_variable]", "answer_cap")
        page.click("button[name=_save]")
        page.wait_for_url(f"{live_server.url}/admin/integrations/aiapp/")

    assert "输出上限变量" in form_text and "OpenAI 兼容服务" in form_text
    assert "只能使用字母、数字、下划线或连字符。" in refused
    app.refresh_from_db()
    assert app.extra.get("max_tokens_variable") == "answer_cap"
