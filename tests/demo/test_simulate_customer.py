"""A simulated customer writes through the GeWe simulator's emit -> the real webhook -> the loop:
``customer_message_simulate``, ``manage.py simulate_customer``, ``manage.py simulator_sync``
and the console page "模拟客户消息". The webhook goes to a live server with eager Celery, so the
AI answer comes back in the same request."""

from __future__ import annotations

import time
from io import StringIO

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from apps.conversations.models import Conversation, Message
from apps.conversations.simulate import customer_message_simulate, simulator_account_sync
from apps.core.exceptions import NotFoundError
from apps.orgs.models import Role
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import Contact, GroupMember
from tests.accounts.factories import UserFactory
from tests.conversations.helpers import ai_app, gewe_connection, gewe_login
from tests.orgs.factories import MembershipFactory
from tests.wechat_accounts.factories import WeChatAccountFactory


@pytest.fixture(scope="module")
def own_server():
    """A live server of this module's own. The session-wide ``live_server`` is shared with the
    browser and media tests; in full CI runs these tests waited in vain for answers through it
    after those tests had used it, so the webhooks here go to a server nothing else touches."""
    server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def loop(transactional_db, simulators_clean, own_server, settings, org):
    """A logged-in account on the GeWe simulator whose webhooks reach the live server."""
    settings.PUBLIC_BASE_URL = own_server.url
    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 0
    connection = gewe_connection(org, simulators_clean)
    account = gewe_login(org, connection, simulators_clean["gewe"], name="销售小王")
    ai_app(org, simulators_clean)
    friend = wechat.contact_upsert(
        org=org, account=account, wxid="wxid_demo_c005", nickname="杨帆", remark="杨帆-新客"
    )
    group = wechat.contact_upsert(
        org=org, account=account, wxid="34889001001@chatroom", kind="group", nickname="华南区群"
    )
    GroupMember.objects.create(org=org, group=group, member_wxid="wxid_demo_c008", nickname="周杰")
    simulator_account_sync(account=account)
    _SIMULATORS["gewe"] = simulators_clean["gewe"]
    return {"account": account, "friend": friend, "group": group, **simulators_clean.servers}


def _ai_replies(conversation):
    return Message.objects.filter(conversation=conversation, sender_kind=Message.SenderKind.AI)


_SIMULATORS: dict = {}


def wait_until(predicate, timeout: float = 60.0):
    """The simulator waits 5 s for the webhook's answer; on a busy machine the live server may
    still be working after that, so poll instead of assuming it has finished. On a timeout the
    message says where the webhook went and what came back (the simulator's delivery log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    gewe = _SIMULATORS.get("gewe")
    deliveries = list(getattr(gewe, "deliveries", []))[-5:]
    raise AssertionError(
        f"condition not reached in time; PUBLIC_BASE_URL={settings.PUBLIC_BASE_URL}; "
        f"eager={settings.CELERY_TASK_ALWAYS_EAGER}; last deliveries={deliveries}"
    )


def _answered(org, contact):
    return Message.objects.filter(
        org=org, conversation__contact=contact, sender_kind="ai", status=Message.Status.SENT
    ).exists()


def test_a_simulated_customer_gets_the_ai_answer(loop, org):
    sent = customer_message_simulate(org=org, text="你好", from_wxid="杨帆")
    assert sent.sender_wxid == "wxid_demo_c005" and not sent.is_group
    wait_until(lambda: _answered(org, loop["friend"]))
    conversation = Conversation.objects.get(org=org, contact=loop["friend"])
    inbound = Message.objects.get(conversation=conversation, direction="inbound")
    assert inbound.text == "你好" and inbound.platform_msg_id  # recorded from the real webhook
    reply = _ai_replies(conversation).get()
    assert reply.status == Message.Status.SENT and reply.text == "echo: 你好"
    assert [s["to"] for s in loop["gewe"].sent] == ["wxid_demo_c005"]


def test_a_group_message_mentions_the_account_so_the_ai_answers(loop, org):
    sent = customer_message_simulate(org=org, text="团购什么时候截止？", group="华南区群")
    assert sent.is_group and sent.sender_wxid == "wxid_demo_c008"
    wait_until(lambda: _answered(org, loop["group"]))
    conversation = Conversation.objects.get(org=org, contact=loop["group"])
    inbound = Message.objects.get(conversation=conversation, direction="inbound")
    assert inbound.mentions_account and inbound.sender_wxid == "wxid_demo_c008"
    assert _ai_replies(conversation).filter(status=Message.Status.SENT).count() == 1


def test_the_command_prints_the_reply_and_its_delay(loop, org):
    out = StringIO()
    call_command(
        "simulate_customer",
        "在吗",
        "--from",
        "wxid_demo_c005",
        "--org",
        org.slug,
        "--wait",
        "60",
        stdout=out,
    )
    assert "wxid_demo_c005 wrote in a private chat to 销售小王: 在吗" in out.getvalue()
    assert "ai replied after" in out.getvalue() and "echo: 在吗" in out.getvalue()


def test_the_command_explains_what_is_wrong(loop, org):
    with pytest.raises(CommandError, match="No organisation"):
        call_command("simulate_customer", "hi", "--org", "nope")
    with pytest.raises(CommandError, match="No group"):
        call_command("simulate_customer", "hi", "--org", org.slug, "--group", "没有这个群")
    with pytest.raises(CommandError, match="Write a message"):
        call_command("simulate_customer", "  ", "--org", org.slug)


def test_simulator_restart_is_healed_by_simulator_sync(loop, org, settings):
    gewe = loop["gewe"]
    gewe.reset()  # what a restart of `manage.py simulate` looks like
    assert gewe.state()["callback_url"] is None and gewe.state()["devices"] == {}
    settings.SIMULATOR_PORTS = {**settings.SIMULATOR_PORTS, "gewe": gewe.port}
    out = StringIO()
    call_command("simulator_sync", stdout=out)
    assert "simulator knows 销售小王" in out.getvalue()
    device = gewe.state()["devices"][loop["account"].device_id]
    assert device["online"] and device["wxid"] == loop["account"].wxid
    assert gewe.state()["callback_url"] == loop["account"].connection.webhook_url
    assert gewe.friends["wxid_demo_c005"]["nickName"] == "杨帆"
    # Sends work again (the device is online there).
    customer_message_simulate(org=org, text="你好", from_wxid="wxid_demo_c005")
    wait_until(lambda: gewe.sent and gewe.sent[-1]["to"] == "wxid_demo_c005")


def test_another_organisations_account_is_not_found(loop, org, other_org):
    theirs = WeChatAccountFactory(org=other_org, device_id="wx_theirs", wxid="wxid_theirs")
    with pytest.raises(NotFoundError):
        customer_message_simulate(org=other_org, text="hi", account=loop["account"].pk)
    with pytest.raises(NotFoundError):
        customer_message_simulate(org=org, text="hi", account=theirs.pk)


def test_console_page_sends_and_shows_the_answer(loop, org):
    agent = UserFactory(default_org=org)
    MembershipFactory(org=org, user=agent, role=Role.AGENT)
    client = Client()
    client.force_login(agent)
    page = client.get("/admin/simulate-customer/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "销售小王" in html and "杨帆-新客" in html and "华南区群" in html
    response = client.post(
        "/admin/simulate-customer/",
        {
            "account": loop["account"].pk,
            "customer": "wxid_demo_c005",
            "group": "",
            "mention": "on",
            "text": "门店在哪",
        },
    )
    assert response.status_code == 302
    wait_until(lambda: _answered(org, loop["friend"]))
    result = client.get(response["Location"])
    html = result.content.decode()
    assert "echo: 门店在哪" in html
    conversation = Conversation.objects.get(org=org, contact=loop["friend"])
    assert f"/workspace/c/{conversation.pk}/" in html
    assert 'http-equiv="refresh"' not in html  # answered: no more refreshing


@pytest.mark.django_db
def test_console_page_roles_and_organisations(org, other_org):
    viewer = UserFactory(default_org=org)
    MembershipFactory(org=org, user=viewer, role=Role.VIEWER)
    client = Client()
    assert client.get("/admin/simulate-customer/").status_code == 302  # to the login page
    client.force_login(viewer)
    assert client.get("/admin/simulate-customer/").status_code == 404
    theirs = WeChatAccountFactory(org=other_org, name="别家账号", device_id="wx_1", wxid="wxid_1")
    Contact.objects.create(org=other_org, account=theirs, wxid="wxid_x", nickname="别家客户")
    ours = WeChatAccountFactory(org=org, name="我们的账号", device_id="wx_2", wxid="wxid_2")
    agent = UserFactory(default_org=org)
    MembershipFactory(org=org, user=agent, role=Role.AGENT)
    client.force_login(agent)
    html = client.get(f"/admin/simulate-customer/?account={theirs.pk}").content.decode()
    assert ours.name in html and "别家账号" not in html and "别家客户" not in html
    posted = client.post(
        "/admin/simulate-customer/",
        {"account": theirs.pk, "customer": "wxid_x", "text": "hi"},
    )
    assert posted.status_code == 200 and "别家客户" not in posted.content.decode()
    assert not Message.objects.exists()
    # Right after sending, before the webhook is processed, the page refreshes itself.
    waiting = client.get(
        f"/admin/simulate-customer/?account={ours.pk}&chat=wxid_new&after=0&at={int(time.time())}"
    ).content.decode()
    assert 'http-equiv="refresh"' in waiting and 'id="simulate-status"' in waiting


def test_a_real_platform_is_refused_clearly(loop, org, simulators_clean):
    connection = loop["account"].connection
    connection.base_url = "http://127.0.0.1:9/gewe/v2/api"  # nothing listens there
    connection.save(update_fields=["base_url"])
    with pytest.raises(Exception, match="not reachable"):
        customer_message_simulate(org=org, text="hi")
    assert requests.get(simulators_clean.urls["gewe"].split("/gewe")[0] + "/__sim__/state").ok
