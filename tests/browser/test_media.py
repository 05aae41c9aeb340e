"""Media in the workspace, in a real Chromium: a customer's image is downloaded through the
platform's API and shown in the thread; a download that failed for good shows 媒体获取失败 with
the reason; another organisation's file is not served."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apps.conversations.models import Message
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.browser.test_admin_pages import browser_page
from tests.conversations.helpers import deliver
from tests.media.helpers import ecloud_connection, ecloud_login
from tests.media.samples import png
from tests.orgs.factories import MembershipFactory

SHOTS = Path("/tmp/shots/media")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("chromium"),
        reason="needs Debian's chromium (installed by .ci/run: apt-get install chromium)",
    ),
]


@pytest.fixture(autouse=True)
def _memory_storage(settings, monkeypatch):
    from apps.integrations import services as integrations

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.MEDIA_DOWNLOAD_MAX_ATTEMPTS = 1
    monkeypatch.setitem(integrations.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


def _session_cookie(user) -> str:
    """A real session for ``user`` (made before the browser opens: Django refuses database
    access from Playwright's event loop)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _session_login(page, live_server, cookie: str) -> None:
    from django.conf import settings

    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )


def _inbound(connection, ecloud, capture, *, data: bytes | None, lose: bool = False) -> Message:
    from apps.integrations.simulators.gewe import image_xml

    payload = ecloud.build_message(
        message_type="60002", from_wxid="wxid_ecust0001", content=image_xml()
    )
    if not lose:
        ecloud.media.store(payload["data"]["msgId"], "image", data)
    deliver(connection, payload, capture)
    return Message.objects.get(platform_msg_id=str(payload["data"]["newMsgId"]))


def test_an_inbound_image_is_downloaded_and_shown_in_the_workspace(
    live_server, org, simulators_clean, django_capture_on_commit_callbacks
):
    ecloud = simulators_clean["ecloud"]
    connection = ecloud_connection(org, simulators_clean)
    ecloud_login(org, connection, ecloud)
    agent = UserFactory(email="agent-media@example.com", is_staff=True, default_org=org)
    MembershipFactory(org=org, user=agent, role=Role.MANAGER)
    ok = _inbound(
        connection, ecloud, django_capture_on_commit_callbacks, data=png(160, 100, seed=3)
    )
    failed = _inbound(connection, ecloud, django_capture_on_commit_callbacks, data=None, lose=True)
    assert ok.media_status == "ready" and failed.media_status == "failed"
    assert ok.conversation_id == failed.conversation_id

    cookie = _session_cookie(agent)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page("zh-hans") as page:
        _session_login(page, live_server, cookie)
        page.goto(f"{live_server.url}/workspace/c/{ok.conversation_id}/")
        image = page.locator(f'[data-id="m{ok.id}"] img.ws-media-image')
        image.wait_for(timeout=15000)
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
        assert image.evaluate("img => img.naturalWidth") == 160
        failure = page.locator(f'[data-id="m{failed.id}"] .ws-media-failed')
        failure.wait_for(timeout=15000)
        text = failure.inner_text()
        assert "媒体获取失败" in text
        assert "消息不存在或已过期" in text
        page.screenshot(path=str(SHOTS / "workspace-thread.png"), full_page=True)
        # The file is served only through the org-checked view: the raw bytes match.
        src = image.get_attribute("src")
        body = page.request.get(f"{live_server.url}{src}").body()
        assert body == png(160, 100, seed=3)
        assert page.errors == []


def test_another_organisations_file_is_not_served_to_the_browser(
    live_server, org, other_org, simulators_clean
):
    from apps.media import services as media_services

    mine = UserFactory(email="agent-a@example.com", is_staff=True, default_org=other_org)
    MembershipFactory(org=other_org, user=mine, role=Role.MANAGER)
    theirs = media_services.media_file_create(org=org, content=png(), name="x.png")
    cookie = _session_cookie(mine)
    with browser_page() as page:
        _session_login(page, live_server, cookie)
        url = f"{live_server.url}/api/v1/media/files/{theirs.pk}/content/"
        assert page.request.get(url).status == 404
        assert page.request.get(f"{url}?org={org.pk}").status == 404
