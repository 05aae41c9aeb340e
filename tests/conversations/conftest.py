from __future__ import annotations

import pytest

from apps.integrations import services as integrations
from tests.conversations.helpers import ai_app, gewe_connection, gewe_login


@pytest.fixture(autouse=True)
def _core_loop_settings(settings, monkeypatch):
    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.WECHAT_SEND_RETRY_BASE_SECONDS = 0
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 0
    settings.CONVERSATION_STREAM_PUSH_INTERVAL = 0
    monkeypatch.setitem(integrations.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


@pytest.fixture
def gewe(simulators_clean):
    return simulators_clean["gewe"]


@pytest.fixture
def openai_sim(simulators_clean):
    return simulators_clean["openai"]


@pytest.fixture
def connection(org, simulators_clean):
    return gewe_connection(org, simulators_clean)


@pytest.fixture
def account(org, connection, gewe):
    return gewe_login(org, connection, gewe)


@pytest.fixture
def reply_app(org, simulators_clean):
    return ai_app(org, simulators_clean)


@pytest.fixture
def handoffs_recorder():
    from apps.core import events

    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    events.conversation_handed_off.connect(receiver, dispatch_uid="test-handoffs-recorder")
    yield received
    events.conversation_handed_off.disconnect(dispatch_uid="test-handoffs-recorder")
