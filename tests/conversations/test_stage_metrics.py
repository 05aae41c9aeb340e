"""Stage histograms (issue 19, apps.core.stages): one customer message through the whole loop
(eager Celery: webhook, processing, AI turn, send) is counted once in every stage, and
``/metrics`` exposes the counts as ``sa_loop_stage_duration_seconds``."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.core.stages import STAGES, stage_histograms
from apps.integrations.models import WebhookEvent
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db
TOKEN = "stage-metrics-token-0123456789"


def _counts(client) -> dict[str, float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    return {
        sample.labels["stage"]: sample.value
        for sample in families["sa_loop_stage_duration_seconds"].samples
        if sample.name == "sa_loop_stage_duration_seconds_count"
    }


def test_one_message_is_counted_once_in_every_stage(
    client, settings, account, reply_app, gewe, django_capture_on_commit_callbacks
):
    settings.METRICS_TOKEN = TOKEN
    assert stage_histograms() == {}
    payload = gewe.build_text(from_wxid="wxid_stage", text="hello", to_account=account.device_id)
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    assert len(gewe.sent) == 1

    assert _counts(client) == {stage: 1.0 for stage in STAGES}
    event = WebhookEvent.objects.get(event_type__startswith="AddMsg")
    assert event.created_at <= event.processing_started_at <= event.processed_at


def test_a_second_message_adds_one_and_the_sums_are_durations(
    client, settings, account, reply_app, gewe, django_capture_on_commit_callbacks
):
    settings.METRICS_TOKEN = TOKEN
    for text in ("one", "two"):
        payload = gewe.build_text(from_wxid="wxid_stage", text=text, to_account=account.device_id)
        deliver(account.connection, payload, django_capture_on_commit_callbacks)
    assert _counts(client) == {stage: 2.0 for stage in STAGES}
    for stage, (buckets, total) in stage_histograms().items():
        assert buckets[-1] == ("+Inf", 2.0), stage
        assert 0.0 <= total < 60.0, stage
