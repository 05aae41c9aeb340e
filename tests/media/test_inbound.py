"""Received media: the download task fetches it through the platform's API, links the file to
the message, retries with backoff, and leaves a visible failure without losing the message."""

from __future__ import annotations

import pytest

from apps.conversations import media as conversation_media
from apps.conversations.models import Message
from apps.integrations.simulators.media import sample_png
from apps.media.models import MediaFile
from tests.conftest import client_for
from tests.conversations.helpers import deliver
from tests.media.helpers import ecloud_connection, ecloud_login


@pytest.fixture(autouse=True)
def _fast(settings, monkeypatch):
    from apps.integrations import services as integrations

    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.MEDIA_DOWNLOAD_MAX_ATTEMPTS = 3
    monkeypatch.setitem(integrations.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


@pytest.fixture
def ecloud(simulators_clean):
    return simulators_clean["ecloud"]


@pytest.fixture
def connection(org, simulators_clean):
    return ecloud_connection(org, simulators_clean)


@pytest.fixture
def account(org, connection, ecloud):
    return ecloud_login(org, connection, ecloud)


def inbound(ecloud, kind: str, data: bytes | None = None, message_type: str = "60002", **extra):
    from apps.integrations.simulators.gewe import image_xml, voice_xml

    content = {"image": image_xml(), "voice": voice_xml()}.get(kind, "")
    payload = ecloud.build_message(
        message_type=message_type, from_wxid="wxid_ecust0001", content=content, **extra
    )
    ecloud.media.store(payload["data"]["msgId"], kind, data)
    return payload


@pytest.mark.django_db
def test_an_inbound_image_is_downloaded_linked_and_served(
    org, member, connection, account, ecloud, django_capture_on_commit_callbacks
):
    content = sample_png(seed=42)
    deliver(connection, inbound(ecloud, "image", content), django_capture_on_commit_callbacks)

    message = Message.objects.get(org=org, kind=Message.Kind.IMAGE)
    assert message.direction == Message.Direction.INBOUND
    assert message.media_status == Message.MediaStatus.READY
    media = message.media_file
    assert media.org == org and media.source == MediaFile.Source.INBOUND
    assert media.content_type == "image/png" and media.size == len(content)
    assert [r.path for r in ecloud.requests if r.path.startswith(("/getMsg", "/files/"))] == [
        "/getMsgImg",
        f"/files/{ecloud.media.by_msg_id[str(message.payload['download']['msg_id'])]}",
    ]
    response = client_for(member, org).get(conversation_media.media_payload(message)["url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content


@pytest.mark.django_db
def test_inbound_voice_uses_get_msg_voice(
    org, connection, account, ecloud, django_capture_on_commit_callbacks
):
    payload = inbound(ecloud, "voice", message_type="60004", length=4242, bufId="0")
    deliver(connection, payload, django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org, kind=Message.Kind.VOICE)
    assert message.media_status == Message.MediaStatus.READY
    assert message.media_file.content_type == "audio/silk"
    body = ecloud.requests_to("/getMsgVoice")[0].json
    assert body["bufId"] == "0" and body["length"] == 4242 and body["fromUser"] == "wxid_ecust0001"


@pytest.mark.django_db
def test_transient_failures_retry_with_backoff_then_fail_visibly(
    org, connection, account, ecloud, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    ecloud.add_fault("error", path="/getMsgImg", status=500)
    deliver(connection, inbound(ecloud, "image"), django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org, kind=Message.Kind.IMAGE)
    # The first attempt ran on commit; later attempts are delayed (backoff), run here by hand.
    assert message.media_status == Message.MediaStatus.PENDING
    assert message.media_attempts == 1 and "Unavailable" in message.media_error
    assert conversation_media.message_media_fetch(org_id=org.pk, message_id=message.pk) == "retry"
    assert conversation_media.message_media_fetch(org_id=org.pk, message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.FAILED
    assert message.media_attempts == 3
    assert "status=500" in message.media_error
    # The message itself is intact and still shown.
    assert message.direction == Message.Direction.INBOUND and message.kind == "image"
    assert conversation_media.media_payload(message)["status"] == "failed"
    assert MediaFile.objects.count() == 0


@pytest.mark.django_db
def test_a_download_the_platform_refuses_fails_at_once(
    org, connection, account, ecloud, django_capture_on_commit_callbacks
):
    payload = inbound(ecloud, "image")
    ecloud.media.by_msg_id.clear()  # the platform no longer has it
    deliver(connection, payload, django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org, kind=Message.Kind.IMAGE)
    assert message.media_status == Message.MediaStatus.FAILED
    assert "消息不存在或已过期" in message.media_error
    assert message.media_attempts == 1


@pytest.mark.django_db
def test_the_download_task_is_idempotent_and_org_scoped(
    org, other_org, connection, account, ecloud, django_capture_on_commit_callbacks
):
    deliver(connection, inbound(ecloud, "image"), django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org, kind=Message.Kind.IMAGE)
    assert message.media_status == Message.MediaStatus.READY
    from apps.conversations.tasks import message_media_fetch

    assert message_media_fetch(org_id=org.pk, message_id=message.pk) == "skipped"
    assert message_media_fetch(org_id=other_org.pk, message_id=message.pk) == "skipped"
    assert MediaFile.objects.count() == 1
    assert len(ecloud.requests_to("/getMsgImg")) == 1


@pytest.mark.django_db
def test_a_failed_download_can_be_retried(
    org, connection, account, ecloud, django_capture_on_commit_callbacks
):
    ecloud.add_fault("error", path="/getMsgImg", status=400, times=1)
    deliver(connection, inbound(ecloud, "image"), django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org, kind=Message.Kind.IMAGE)
    assert message.media_status == Message.MediaStatus.FAILED
    with django_capture_on_commit_callbacks(execute=True):
        conversation_media.message_media_retry(org_id=org.pk, message_id=message.pk)
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.READY


@pytest.mark.django_db
def test_an_inbound_text_schedules_nothing(
    org, connection, account, ecloud, django_capture_on_commit_callbacks
):
    payload = ecloud.build_message(message_type="60001", from_wxid="wxid_x", content="hi")
    deliver(connection, payload, django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org)
    assert message.media_status == "" and conversation_media.media_payload(message) is None


@pytest.mark.django_db
def test_a_lost_download_task_is_recovered_by_the_periodic_sweep(
    org, connection, account, ecloud, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from apps.conversations.tasks import media_fetch_recover
    from apps.integrations.models import WebhookEvent
    from apps.integrations.webhooks import webhook_event_process
    from tests.conversations.helpers import post_webhook

    # Store and process the event, but lose every on-commit task (the download among them).
    with django_capture_on_commit_callbacks(execute=False):
        assert post_webhook(connection, inbound(ecloud, "image")).status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        webhook_event_process(event_id=WebhookEvent.objects.get().pk)
    message = Message.objects.get(org=org, kind=Message.Kind.IMAGE)
    assert message.media_status == Message.MediaStatus.PENDING
    assert media_fetch_recover() == 0  # not stale yet
    Message.objects.filter(pk=message.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert media_fetch_recover() == 1
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.READY
