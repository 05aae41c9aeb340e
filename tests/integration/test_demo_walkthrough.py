"""README "Your first conversation in two minutes", every step, against the real thing:
``manage.py run_stack`` (what ``make run`` runs: migrate, seed_demo, Daphne, a Celery worker,
beat and the simulators) on PostgreSQL and Redis, ``manage.py simulate_customer`` as a newcomer
types it, and headless Chromium (Playwright on Debian's chromium) for the pages.

The steps are one test, in the README's order, because each builds on the previous one.
Screenshots of each step go to ``var/screenshots/walkthrough/`` (``$SHOTS_DIR`` overrides).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from apps.conversations.models import Conversation, Message
from apps.wechat_accounts.models import WeChatAccount
from tests.conftest import requires_postgres

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    requires_postgres,
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
    # Starting the whole stack and walking every step takes minutes on a busy 2-core machine.
    pytest.mark.timeout(900),
]

SIM_NAMES = ["gewe", "ecloud", "fastgpt", "dify", "openai", "dashscope"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


class Stack:
    """``manage.py run_stack`` in a subprocess with its own ports and var/ directory."""

    def __init__(self, var_dir: Path, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.var_dir = var_dir
        self.sim_ports = {name: _free_port() for name in SIM_NAMES}
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "VAR_DIR": str(var_dir),
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "SECRET_KEY": "walkthrough-secret-key-" + "x" * 40,
            "DEBUG": "0",
            "SERVE_STATIC": "1",
            "LANGUAGE_CODE": "zh-hans",
            "LOG_LEVEL": "WARNING",
            "DB_CONN_MAX_AGE": "0",
            "SIMULATOR_LOGIN_CONFIRM_SECONDS": "3",
            **{f"SIMULATOR_{n.upper()}_PORT": str(p) for n, p in self.sim_ports.items()},
        }
        self.env.pop("PUBLIC_BASE_URL", None)  # run_stack derives it from its port
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_stack", "--port", str(self.port)],
            env=self.env,
            cwd=settings.BASE_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._ready, timeout=300, interval=0.5)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"run_stack exited early:\n{self.output()}")
        return "Try it:" in self.output()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def manage(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            env={**self.env, "PUBLIC_BASE_URL": self.url},
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def sim_state(self, name: str = "gewe") -> dict:
        return requests.get(
            f"http://127.0.0.1:{self.sim_ports[name]}/__sim__/state", timeout=5
        ).json()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def shots() -> Path:
    path = Path(os.environ.get("SHOTS_DIR") or settings.VAR_DIR / "screenshots" / "walkthrough")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def stack(transactional_db, shots):
    """The stack; its output is kept in the screenshot directory as run_stack.log."""
    from config.celery import app as celery_app

    celery_app.control.purge()  # stale tasks of eager-off tests on the shared broker
    with tempfile.TemporaryDirectory(prefix="walkthrough-") as var_dir:
        running = Stack(Path(var_dir), shots / "run_stack.log")
        try:
            running.start()
            yield running
        finally:
            running.stop()


def _browser(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    )


def _login(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))


def _reply_after(conversation: Conversation, after_id: int) -> Message | None:
    return (
        Message.objects.filter(
            conversation=conversation,
            id__gt=after_id,
            direction=Message.Direction.OUTBOUND,
            status=Message.Status.SENT,
        )
        .order_by("id")
        .first()
    )


def test_readme_walkthrough_end_to_end(stack, shots, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM reads below only look
    # at committed rows of the stack, so Django's async guard is lifted for this test.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    timings: dict[str, float] = {}

    # 1. `make run`: the logins are printed and kept in var/demo_logins.json.
    logins = {
        row["role"]: row for row in json.loads((stack.var_dir / "demo_logins.json").read_text())
    }
    out = stack.output()
    for role in ("owner", "agent", "viewer"):
        assert f"{logins[role]['email']} / {logins[role]['password']}" in out
    assert f"Webhooks:  {stack.url}" in out  # PUBLIC_BASE_URL follows the port
    assert stack.sim_state()["callback_url"].startswith(stack.url + "/")
    account = WeChatAccount.objects.get(org__slug="demo")
    assert account.status == WeChatAccount.Status.ONLINE
    assert account.device_id in stack.sim_state()["devices"]

    # 4. (command form, before the browser) simulate a customer and wait for the answer.
    started = time.monotonic()
    result = stack.manage("simulate_customer", "你好，地板怎么卖？", "--wait", "60")
    timings["simulate_customer --wait"] = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replied after" in result.stdout, result.stdout
    customer = re.search(r"^(wxid_\S+) wrote", result.stdout, re.M).group(1)
    conversation = Conversation.objects.get(account=account, contact__wxid=customer)
    ai_reply = _reply_after(conversation, 0)
    assert ai_reply.sender_kind == Message.SenderKind.AI
    assert ai_reply.text in [s["body"]["content"] for s in stack.sim_state()["sent"]]

    with sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-hans"})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # 2. Log in as the printed owner: the console's home page.
        _login(page, stack.url, logins["owner"]["email"], logins["owner"]["password"])
        page.wait_for_selector("[data-card=waiting]", timeout=15000)
        assert page.inner_text("[data-value=waiting-count]").strip() == "2"
        assert page.inner_text("[data-value=alerts-count]").strip() == "1"
        assert page.inner_text("[data-value=accounts-count]").strip() == "0"  # all online
        assert "¥" in page.inner_text("[data-value=budget-used]")
        page.screenshot(path=str(shots / "02-home.png"), full_page=True)

        # 3. The workspace lists the demo conversations, among them the waiting ones.
        page.goto(f"{stack.url}/workspace/")
        page.wait_for_selector("#ws-rows li", timeout=15000)
        rows = page.inner_text("#ws-rows")
        assert "李娜" in rows or "李娜-团购" in rows, rows
        page.screenshot(path=str(shots / "03-workspace.png"), full_page=True)

        # 4-5. Simulate on the console page and watch the AI answer arrive live in the workspace.
        page.goto(f"{stack.url}/workspace/c/{conversation.pk}/")
        page.wait_for_selector("#ws-bubbles li", timeout=15000)
        assert ai_reply.text[:10] in page.inner_text("#ws-bubbles")
        second = browser.new_page(locale="zh-CN")
        _login(second, stack.url, logins["owner"]["email"], logins["owner"]["password"])
        second.goto(f"{stack.url}/admin/simulate-customer/")
        second.screenshot(path=str(shots / "04-simulate-form.png"), full_page=True)
        second.select_option("#id_customer", customer)
        second.fill("#id_text", "门店地址在哪里？")
        last_id = Message.objects.order_by("-id").values_list("id", flat=True).first()
        started = time.monotonic()
        second.click("#simulate-send")
        page.wait_for_function(
            "text => document.querySelector('#ws-bubbles').innerText.includes(text)",
            arg="南山区科技园",
            timeout=30000,
        )
        timings["console page -> AI answer shown live in the workspace"] = (
            time.monotonic() - started
        )
        second.wait_for_selector("#simulate-status", timeout=10000)
        wait_until(lambda: _reply_after(conversation, last_id), timeout=20)
        second.reload()
        assert "南山区科技园" in second.inner_text("#simulate-thread")
        second.screenshot(path=str(shots / "05-simulate-answered.png"), full_page=True)
        page.screenshot(path=str(shots / "05-workspace-ai-answer.png"), full_page=True)

        # 6. Take over and reply as a person; the customer's next message gets no AI answer.
        page.click("[data-action=takeover]")
        wait_until(lambda: Conversation.objects.get(pk=conversation.pk).mode == "human")
        page.wait_for_selector("#ws-composer:not([hidden])", timeout=10000)
        page.fill("#ws-input", "您好，我是店长，周末可以来店里详谈。")
        page.click("#ws-send")
        wait_until(
            lambda: any(
                s["body"]["content"] == "您好，我是店长，周末可以来店里详谈。"
                for s in stack.sim_state()["sent"]
            )
        )
        page.screenshot(path=str(shots / "06-taken-over.png"), full_page=True)
        last_id = Message.objects.order_by("-id").values_list("id", flat=True).first()
        result = stack.manage("simulate_customer", "好的，那我周六过去", "--from", customer)
        assert result.returncode == 0, result.stdout + result.stderr
        wait_until(
            lambda: Message.objects.filter(
                conversation=conversation, id__gt=last_id, direction="inbound"
            ).exists()
        )
        time.sleep(3)
        assert _reply_after(conversation, last_id) is None  # a person has it: the AI is quiet

        # 7. Hand back to the AI, then resolve.
        page.click("[data-action=return_ai]")
        wait_until(lambda: Conversation.objects.get(pk=conversation.pk).mode == "ai")
        page.click("[data-action=resolve]")
        wait_until(lambda: Conversation.objects.get(pk=conversation.pk).status == "resolved")

        # 10. The agent works in the workspace too; the viewer may not simulate customers.
        agent_page = browser.new_page(locale="zh-CN")
        _login(agent_page, stack.url, logins["agent"]["email"], logins["agent"]["password"])
        agent_page.goto(f"{stack.url}/workspace/")
        agent_page.wait_for_selector("#ws-rows li", timeout=15000)
        viewer_page = browser.new_page(locale="zh-CN")
        _login(viewer_page, stack.url, logins["viewer"]["email"], logins["viewer"]["password"])
        response = viewer_page.goto(f"{stack.url}/admin/simulate-customer/")
        assert response.status == 404

        # 8. A group: @-mentioned, the AI answers in the group.
        started = time.monotonic()
        result = stack.manage(
            "simulate_customer", "团购什么时候截止？", "--group", "华南区客户交流群", "--wait", "60"
        )
        timings["group message -> AI answer"] = time.monotonic() - started
        assert result.returncode == 0 and "replied after" in result.stdout, (
            result.stdout + result.stderr
        )

        # 9. The handoff keyword: the conversation waits for a person, nobody answers.
        result = stack.manage("simulate_customer", "太贵了，转人工", "--from", "王磊")
        assert result.returncode == 0, result.stdout + result.stderr
        waiting = wait_until(
            lambda: Conversation.objects.filter(
                account=account, contact__nickname="王磊", mode="human", status="pending"
            ).first()
        )
        assert waiting.handoff_reason == "keyword"

        # 11. A new account: its QR login page shows a real QR code, and the simulated phone
        # confirms by itself after SIMULATOR_LOGIN_CONFIRM_SECONDS; the page follows along.
        session = requests.Session()
        token = session.post(
            f"{stack.url}/api/v1/auth/login/",
            json={"email": logins["owner"]["email"], "password": logins["owner"]["password"]},
            timeout=10,
        ).json()["access"]
        session.headers["Authorization"] = f"Bearer {token}"
        created = session.post(
            f"{stack.url}/api/v1/wechat-accounts/",
            json={"name": "销售小张", "connection": account.connection_id},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        new_id = created.json()["id"]
        page.goto(f"{stack.url}/admin/wechat_accounts/wechataccount/{new_id}/login/")
        qr = page.wait_for_selector("img[src^='data:image/png;base64,']", timeout=15000)
        assert qr.evaluate("img => img.naturalWidth") > 50  # the image decodes
        page.screenshot(path=str(shots / "11-qr-login.png"), full_page=True)

        def online_after_reload() -> bool:
            page.reload()  # the page polls the platform, as its own 5 s refresh does
            return WeChatAccount.objects.get(pk=new_id).status == WeChatAccount.Status.ONLINE

        wait_until(online_after_reload, timeout=40, interval=2)
        page.reload()
        page.screenshot(path=str(shots / "11-qr-login-online.png"), full_page=True)
        assert WeChatAccount.objects.get(pk=new_id).wxid != account.wxid
        assert errors == [], errors
        browser.close()

    print("\nwalkthrough timings:", {k: f"{v:.1f} s" for k, v in timings.items()})
