"""A notification webhook URL carries its access_token: stored and logged only masked."""

from __future__ import annotations

import logging
import socket

import pytest

from apps.core.secrets import SecretMaskingFilter
from apps.monitoring import services
from apps.monitoring.models import NotificationDelivery, NotificationWebhook

pytestmark = pytest.mark.django_db

TOKEN = "dingtalk0access0token0canary0f00d"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_failed_webhook_delivery_stores_and_logs_the_url_masked(
    org, owner, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    url = f"http://127.0.0.1:{_closed_port()}/robot/send?access_token={TOKEN}"
    NotificationWebhook.objects.create(org=org, name="robot", url=url, kind="dingtalk")
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(org=org, users=[owner], title="x", type="error")
    delivery = NotificationDelivery.objects.get(channel="webhook")
    assert delivery.status == "failed"
    assert "ConnectionError" in delivery.last_error
    assert TOKEN not in delivery.last_error
    assert TOKEN not in delivery.target
    # At the source, not only through the log filter: the raw records carry no token.
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        if record.exc_info:
            assert TOKEN not in SecretMaskingFilter._formatter.formatException(record.exc_info)
