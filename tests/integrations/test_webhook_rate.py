"""The per-connection webhook limit: far above real traffic, 429 + Retry-After past it, nothing
stored for a refused event, other connections untouched (issue 22)."""

from __future__ import annotations

import pytest

from apps.integrations.models import WebhookEvent
from apps.integrations.simulators import gewe as gewe_sim
from tests.conversations.helpers import gewe_connection, post_webhook

pytestmark = pytest.mark.django_db


def _ping():
    return gewe_sim.build_ping("token")


def test_default_limit_is_far_above_a_busy_sales_floor(settings):
    # 60 accounts on one connection at 20 messages a second is 1,200 a minute.
    assert settings.WEBHOOK_RATE_LIMIT_PER_MINUTE >= 10 * 1200


def test_over_the_limit_answers_429_and_stores_nothing(org, other_org, simulators_clean, settings):
    settings.WEBHOOK_RATE_LIMIT_PER_MINUTE = 3
    busy = gewe_connection(org, simulators_clean)
    calm = gewe_connection(other_org, simulators_clean)
    assert [post_webhook(busy, _ping()).status_code for _ in range(3)] == [200, 200, 200]
    refused = post_webhook(busy, {"TypeName": "AddMsg", "Appid": "x", "Data": {}})
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "throttled"
    assert not WebhookEvent.objects.filter(org=org).exists()
    assert post_webhook(calm, _ping()).status_code == 200


def test_zero_disables_the_limit(org, simulators_clean, settings):
    settings.WEBHOOK_RATE_LIMIT_PER_MINUTE = 0
    connection = gewe_connection(org, simulators_clean)
    assert {post_webhook(connection, _ping()).status_code for _ in range(5)} == {200}
