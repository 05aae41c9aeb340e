"""The agent workspace in a real headless Chromium against the live stack: Daphne, a real Celery
worker on the Redis broker, PostgreSQL, and the GeWe and OpenAI simulators over HTTP (the
fixtures of tests/integration/test_core_loop_live.py). Each test asserts what an agent would
check on the screen; screenshots go to /tmp/shots/workspace/ (and on failure too)."""

# ruff: noqa: F811 - the live-stack fixtures are imported by name
from __future__ import annotations

import contextlib
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from apps.conversations.models import CannedReply, Conversation, Message
from apps.orgs.models import Role
from apps.wechat_accounts.models import Contact
from tests.accounts.factories import UserFactory
from tests.conftest import requires_postgres
from tests.integration import test_core_loop_live as live_stack
from tests.integration.test_core_loop_live import (  # noqa: F401 - fixtures
    daphne,
    loop,
    not_eager,
    post,
    wait_until,
    workers,
)
from tests.orgs.factories import MembershipFactory, OrganizationFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path("/tmp/shots/workspace")
CUSTOMER = "wxid_ws_customer_1"

# The page's JavaScript and CSS come from Daphne itself.
live_stack.ENV["SERVE_STATIC"] = "1"
live_stack.ENV["LANGUAGE_CODE"] = "zh-hans"

pytestmark = [
    requires_postgres,
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
]


@pytest.fixture(autouse=True)
def _db_from_the_browser_thread(monkeypatch):
    """Playwright's sync API runs an event loop in this thread; the test reads committed rows
    between browser steps."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _member(org, role, name):
    user = UserFactory(name=name, default_org=org)
    MembershipFactory(org=org, user=user, role=role)
    return user


def _session_cookie(user, base_url):
    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        try:
            yield instance
        finally:
            instance.close()


def open_page(instance, base_url, user, path="/workspace/", *, bypass_csp=False):
    """A signed-in page with its socket online. The workspace runs under ``script-src 'self'``
    (no eval), so waits use locators; ``bypass_csp`` only where a test drives the page's JS."""
    context = instance.new_context(
        bypass_csp=bypass_csp,
        viewport={"width": 1440, "height": 900},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        extra_http_headers={"Accept-Language": "zh-hans"},
    )
    context.add_cookies([_session_cookie(user, base_url)])
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    # What the console shows as an error counts too: a module that failed to load, a failed
    # request of the page's own scripts, a CSP violation.
    page.on(
        "console",
        lambda message: (
            page.errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    # The console names no URL: a response of 400 or more names it here.
    page.on(
        "response",
        lambda response: (
            page.errors.append(f"{response.status} {response.request.method} {response.url}")
            if response.status >= 400
            else None
        ),
    )
    page.goto(base_url + path)
    online(page)
    return page


def online(page, timeout=15000):
    page.locator("#ws-conn[data-state=online]").wait_for(state="attached", timeout=timeout)


def bubble(page, text):
    return page.locator(f"#ws-bubbles .ws-text:text-is('{text}')")


@contextlib.contextmanager
def shot_on_failure(page, name):
    try:
        yield
    except BaseException:
        page.screenshot(path=str(SHOTS / f"FAILED-{name}.png"))
        raise


def bubbles(page) -> list[str]:
    return page.locator("#ws-bubbles .ws-text").all_inner_texts()


def customer(loop, nickname="王女士"):
    return Contact.objects.create(
        org=loop["org"], account=loop["account"], wxid=CUSTOMER, nickname=nickname
    )


def say(daphne, loop, text):
    gewe = loop["gewe"]
    payload = gewe.build_text(from_wxid=CUSTOMER, text=text, to_account=loop["account"].device_id)
    assert post(daphne, loop["connection"], payload) == 200


def test_live_message_ai_reply_handoff_takeover_and_back(daphne, workers, loop, not_eager):
    workers(1)
    agent = _member(loop["org"], Role.AGENT, "小李")
    customer(loop)
    gewe = loop["gewe"]
    with browser() as instance:
        page = open_page(instance, daphne, agent)
        with shot_on_failure(page, "loop"):
            # A customer writes: the row appears without a reload, then the AI answer.
            say(daphne, loop, "你好，请问门店几点关门？")
            row = page.locator(".ws-row", has_text="王女士")
            row.wait_for(timeout=15000)
            assert "wxid_" not in row.inner_text()
            row.click()
            page.locator("#ws-bubbles .ws-from-ai").first.wait_for(timeout=30000)
            # The thread is never shown half-loaded: with the AI answer, the question is there.
            assert "你好，请问门店几点关门？" in bubbles(page)
            assert "echo: 你好，请问门店几点关门？" in bubbles(page)
            # The reply says which AI app answered (failover may switch apps).
            ai_head = page.locator("#ws-bubbles .ws-from-ai .ws-sender").first.inner_text()
            assert ai_head == "AI · Sales AI"
            page.screenshot(path=str(SHOTS / "01-ai-answered.png"))

            # "我要转人工": badge, banner and a toast on the open page.
            say(daphne, loop, "我要转人工")
            page.locator("#ws-handoff-banner").wait_for(state="visible", timeout=15000)
            assert "客户要求转人工" in page.inner_text("#ws-handoff-banner")
            assert page.locator("#ws-thread-mode").inner_text() == "人工"
            page.locator(".ws-toast", has_text="需要人工接待").wait_for(timeout=5000)
            expect(page).to_have_title(re.compile(r"^\(1\) "), timeout=5000)
            page.screenshot(path=str(SHOTS / "02-handoff.png"))

            # The agent answers with Enter: the simulator receives it, the chat is the agent's.
            sent_before = len(gewe.sent)
            page.fill("#ws-input", "您好，我是客服小李")
            page.press("#ws-input", "Enter")
            wait_until(lambda: len(gewe.sent) > sent_before, timeout=20)
            assert gewe.sent[-1]["body"]["content"] == "您好，我是客服小李"
            page.locator(".ws-from-agent .ws-status", has_text="已发送").first.wait_for(
                timeout=15000
            )
            conversation = Conversation.objects.get(org=loop["org"])
            assert conversation.mode == "human" and conversation.assignee_id == agent.id
            page.locator("#ws-handoff-banner").wait_for(state="hidden", timeout=5000)

            # The customer's next message gets no AI answer while the person has it.
            ai_before = Message.objects.filter(sender_kind="ai").count()
            say(daphne, loop, "好的，谢谢")
            wait_until(lambda: "好的，谢谢" in bubbles(page), timeout=15)
            time.sleep(2.0)
            assert Message.objects.filter(sender_kind="ai").count() == ai_before
            page.screenshot(path=str(SHOTS / "03-agent-replied.png"))

            # 交回 AI: the AI answers the next message again.
            page.click("[data-action=return_ai]")
            expect(page.locator("#ws-thread-mode")).to_have_text("AI", timeout=10000)
            say(daphne, loop, "还有一个问题")
            bubble(page, "echo: 还有一个问题").wait_for(timeout=30000)
        assert page.errors == []


def test_two_agents_see_each_other_typing_and_a_viewer_has_no_composer(daphne, loop):
    org = loop["org"]
    first = _member(org, Role.AGENT, "小李")
    second = _member(org, Role.AGENT, "小王")
    viewer = _member(org, Role.VIEWER, "老板")
    contact = customer(loop)
    conversation = Conversation.objects.create(
        org=org, account=loop["account"], contact=contact, last_message_at=None
    )
    Message.objects.create(
        org=org,
        conversation=conversation,
        account=loop["account"],
        direction="inbound",
        sender_kind="customer",
        text="有人吗",
    )
    path = f"/workspace/c/{conversation.id}/"
    with browser() as instance:
        a = open_page(instance, daphne, first, path)
        b = open_page(instance, daphne, second, path)
        with shot_on_failure(b, "typing"):
            expect(a.locator("#ws-presence")).to_contain_text("小王 正在查看", timeout=10000)
            a.type("#ws-input", "我来回复")
            expect(b.locator("#ws-presence")).to_contain_text("小李 正在输入", timeout=10000)
            b.screenshot(path=str(SHOTS / "04-colleague-typing.png"))
        v = open_page(instance, daphne, viewer, path)
        with shot_on_failure(v, "viewer"):
            v.wait_for_selector("#ws-readonly", state="visible")
            assert v.locator("#ws-composer").is_hidden()
            assert v.locator("#ws-actions").is_hidden()
            v.screenshot(path=str(SHOTS / "05-viewer.png"))
        assert a.errors == [] and b.errors == [] and v.errors == []


def test_other_organisation_sees_nothing_live_and_gets_404(daphne, workers, loop, not_eager):
    workers(1)
    rival = OrganizationFactory(name="Rival", slug=f"rival-{uuid.uuid4().hex[:6]}")
    outsider = _member(rival, Role.AGENT, "外人")
    agent = _member(loop["org"], Role.AGENT, "小李")
    contact = customer(loop)
    conversation = Conversation.objects.create(
        org=loop["org"], account=loop["account"], contact=contact
    )
    with browser() as instance:
        page = open_page(instance, daphne, outsider)
        with shot_on_failure(page, "outsider"):
            response = page.goto(f"{daphne}/workspace/c/{conversation.id}/")
            assert response.status == 404
            page.goto(f"{daphne}/workspace/")
            online(page)
            # Our organisation's agent writes and the customer writes: nothing reaches them.
            ours = open_page(instance, daphne, agent, f"/workspace/c/{conversation.id}/")
            ours.fill("#ws-input", "内部备注")
            ours.check("input[value=note]")
            ours.press("#ws-input", "Enter")
            say(daphne, loop, "外人看不到我")
            bubble(ours, "外人看不到我").wait_for(timeout=20000)
            time.sleep(1.0)
            assert page.locator(".ws-row").count() == 0
            assert "外人看不到我" not in page.content()


def test_reconnect_catches_up_every_message_exactly_once(daphne, workers, loop, not_eager):
    workers(1)
    org = loop["org"]
    agent = _member(org, Role.AGENT, "小李")
    contact = customer(loop)
    conversation = Conversation.objects.create(
        org=org, account=loop["account"], contact=contact, mode="human"
    )
    with browser() as instance:
        page = open_page(
            instance, daphne, agent, f"/workspace/c/{conversation.id}/", bypass_csp=True
        )
        with shot_on_failure(page, "reconnect"):
            say(daphne, loop, "断线前")
            wait_until(lambda: "断线前" in bubbles(page), timeout=20)
            # Drop the socket and hold the reconnect back while the customer writes.
            page.evaluate(
                "() => { const live = window.workspace.live; live.attempt = 4;"
                " live.ws.close(4999); }"
            )
            expect(page.locator("#ws-conn")).to_have_text("重新连接中…")
            page.screenshot(path=str(SHOTS / "06-reconnecting.png"))
            texts = ["断线中 1", "断线中 2", "断线中 3"]
            for text in texts:
                say(daphne, loop, text)
            wait_until(
                lambda: (
                    Message.objects.filter(conversation=conversation, text__in=texts).count() == 3
                ),
                timeout=20,
            )
            online(page, timeout=30000)
            expect(page.locator("#ws-bubbles .ws-text", has_text="断线中")).to_have_count(
                3, timeout=15000
            )
            say(daphne, loop, "重连后")
            wait_until(lambda: "重连后" in bubbles(page), timeout=20)
            seen = bubbles(page)
            for text in ["断线前", *texts, "重连后"]:
                assert seen.count(text) == 1, (text, seen)
            assert page.locator("#ws-conn").is_hidden()
        assert page.errors == []


def test_slash_inserts_a_canned_reply_with_variables_filled(daphne, loop):
    org = loop["org"]
    agent = _member(org, Role.AGENT, "小李")
    contact = customer(loop, nickname="陈先生")
    conversation = Conversation.objects.create(org=org, account=loop["account"], contact=contact)
    CannedReply.objects.create(
        org=org, title="问候", shortcut="hi", text="{nickname}您好，我是{agent_name}"
    )
    CannedReply.objects.create(org=org, title="报价", shortcut="price", text="价格请看附件")
    with browser() as instance:
        page = open_page(instance, daphne, agent, f"/workspace/c/{conversation.id}/")
        with shot_on_failure(page, "canned"):
            page.focus("#ws-input")
            page.keyboard.type("/hi")
            page.wait_for_selector("#ws-canned", state="visible")
            page.screenshot(path=str(SHOTS / "07-canned.png"))
            page.keyboard.press("Enter")
            expect(page.locator("#ws-input")).to_have_value("陈先生您好，我是小李", timeout=5000)
            assert page.locator("#ws-canned").is_hidden()
            # Shift+Enter is a new line, not a send.
            page.keyboard.press("Shift+Enter")
            assert page.input_value("#ws-input").endswith("\n")
            assert not Message.objects.filter(conversation=conversation).exists()
        assert page.errors == []


def test_the_list_a_conversation_and_a_live_update_log_no_console_error(
    daphne, workers, loop, not_eager
):
    """Every workspace screen an agent uses, in Chinese: the list, an open conversation with
    its reply box and customer pane, and a message arriving live. The console shows no error
    (a module of the page that failed to load, or threw, would show here first)."""
    workers(1)
    org = loop["org"]
    agent = _member(org, Role.AGENT, "小李")
    contact = customer(loop)
    conversation = Conversation.objects.create(
        org=org,
        account=loop["account"],
        contact=contact,
        mode="human",
        assignee=agent,
        last_message_at=timezone.now(),
    )
    Message.objects.create(
        org=org,
        conversation=conversation,
        account=loop["account"],
        direction="inbound",
        sender_kind="customer",
        text="请问有优惠吗",
    )
    with browser() as instance:
        page = open_page(instance, daphne, agent)
        with shot_on_failure(page, "console"):
            row = page.locator(".ws-row", has_text="王女士")
            row.wait_for(timeout=10000)
            expect(row.locator(".ws-badge-human")).to_have_text("人工")  # the JS catalogue
            page.screenshot(path=str(SHOTS / "08-list.png"))

            row.click()
            bubble(page, "请问有优惠吗").wait_for(timeout=10000)
            expect(page.locator("#ws-customer")).to_contain_text("其他会话", timeout=10000)
            expect(page.locator("#ws-thread-assignee")).to_have_text("分配给 小李")
            page.fill("#ws-input", "您好，本周下单九折")
            page.screenshot(path=str(SHOTS / "09-conversation.png"))

            say(daphne, loop, "那我现在下单")
            bubble(page, "那我现在下单").wait_for(timeout=20000)
            expect(row.locator(".ws-row-preview")).to_have_text("那我现在下单", timeout=5000)
            assert page.input_value("#ws-input") == "您好，本周下单九折"
            page.screenshot(path=str(SHOTS / "10-live-update.png"))

            # A label typed in the header is saved and shown as the server returns it.
            page.fill(".ws-label-input", "意向客户")
            page.press(".ws-label-input", "Enter")
            expect(page.locator("#ws-thread-labels .ws-tag")).to_have_text(["意向客户×"])
            wait_until(lambda: [x.name for x in conversation.labels.all()] == ["意向客户"])
        assert page.errors == []
