"""Sending stored files through the one outbound pipeline: upload -> send -> the platform
fetched our signed URL and got the same bytes; same order, limits and exactly-once rules."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.billing.models import CostLedger
from apps.conversations.models import Conversation, Message
from apps.media import services as media_services
from apps.media.models import MediaFile
from apps.wechat_accounts import services as wechat
from tests.conftest import client_for
from tests.conversations.helpers import gewe_connection, gewe_login
from tests.media import samples
from tests.media.helpers import ecloud_connection, ecloud_login, live_public_url


@pytest.fixture(autouse=True)
def _fast(settings, monkeypatch):
    from apps.integrations import services as integrations

    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.WECHAT_SEND_RETRY_BASE_SECONDS = 0
    monkeypatch.setitem(integrations.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


def conversation_with(org, account, wxid="wxid_cust0001") -> Conversation:
    contact = wechat.contact_upsert(org=org, account=account, wxid=wxid)
    conversation, _ = Conversation.objects.get_or_create(org=org, account=account, contact=contact)
    return conversation


def reply(client, conversation, **body):
    return client.post(f"/api/v1/conversations/{conversation.pk}/messages/", body, format="json")


@pytest.mark.django_db(transaction=True)
def test_upload_send_and_gewe_fetches_the_same_bytes(
    org, member, simulators_clean, live_server, settings
):
    gewe = simulators_clean["gewe"]
    live_public_url(settings, live_server, gewe)
    account = gewe_login(org, gewe_connection(org, simulators_clean), gewe)
    conversation = conversation_with(org, account)
    client = client_for(member, org)
    content = samples.png(seed=77)
    upload = client.post(
        "/api/v1/media/files/",
        {"file": SimpleUploadedFile("海报.png", content)},
        format="multipart",
    )
    assert upload.status_code == 201, upload.content
    response = reply(client, conversation, kind="image", media=upload.json()["id"])
    assert response.status_code == 202, response.content
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == Message.Status.SENT, message.error
    assert message.media_file_id == upload.json()["id"]
    assert response.json()["media"]["name"] == "海报.png"
    [sent] = gewe.sent
    url = sent["body"]["imgUrl"]
    assert url.startswith(f"{live_server.url}/media/s/{message.media_file_id}/")
    [fetched] = gewe.media.fetched
    assert fetched["url"] == url and fetched["status"] == 200
    assert fetched["sha256"] == hashlib.sha256(content).hexdigest()
    # Metered per operation, as every send.
    assert CostLedger.objects.filter(org=org, request_id=f"wechat-send-{message.pk}").count() == 1


@pytest.mark.django_db(transaction=True)
def test_file_and_video_through_e_cloud(org, member, simulators_clean, live_server, settings):
    ecloud = simulators_clean["ecloud"]
    live_public_url(settings, live_server, ecloud)
    account = ecloud_login(org, ecloud_connection(org, simulators_clean), ecloud)
    conversation = conversation_with(org, account)
    client = client_for(member, org)
    pdf = media_services.media_file_create(org=org, content=samples.pdf(), name="报价单.pdf")
    video = media_services.media_file_create(org=org, content=samples.mp4(), name="demo.mp4")
    assert reply(client, conversation, kind="file", media=pdf.pk).status_code == 202
    assert (
        reply(client, conversation, kind="video", media=video.pk, duration_s=7).status_code == 202
    )
    assert list(Message.objects.filter(org=org).values_list("status", flat=True)) == [
        "sent",
        "sent",
    ]
    file_send, video_send = ecloud.sent
    assert file_send["body"]["fileName"] == "报价单.pdf"
    assert video_send["body"]["thumbPath"].endswith("/media/cover/video.png")
    by_url = {f["url"]: f for f in ecloud.media.fetched}
    assert by_url[file_send["body"]["path"]]["sha256"] == pdf.checksum
    assert by_url[video_send["body"]["path"]]["sha256"] == video.checksum
    assert by_url[video_send["body"]["thumbPath"]]["content_type"] == "image/png"


@pytest.mark.django_db
def test_media_replies_are_validated(org, other_org, member, simulators_clean):
    gewe = simulators_clean["gewe"]
    account = gewe_login(org, gewe_connection(org, simulators_clean), gewe)
    conversation = conversation_with(org, account)
    client = client_for(member, org)
    image = media_services.media_file_create(org=org, content=samples.png(), name="a.png")
    pdf = media_services.media_file_create(org=org, content=samples.pdf(), name="a.pdf")
    theirs = media_services.media_file_create(org=other_org, content=samples.png(), name="b.png")
    # A PDF is not an image; another organisation's file does not exist here; text has no file.
    for body in (
        {"kind": "image", "media": pdf.pk},
        {"kind": "video", "media": image.pk},
        {"kind": "image", "media": theirs.pk},
        {"kind": "image"},
    ):
        response = reply(client, conversation, **body)
        assert response.status_code == 400, (body, response.content)
    assert not Message.objects.filter(org=org).exists()
    assert gewe.sent == []


@pytest.mark.django_db
def test_media_keeps_per_contact_order_with_text(
    org, member, simulators_clean, django_capture_on_commit_callbacks
):
    gewe = simulators_clean["gewe"]
    account = gewe_login(org, gewe_connection(org, simulators_clean), gewe)
    conversation = conversation_with(org, account)
    client = client_for(member, org)
    image = media_services.media_file_create(org=org, content=samples.png(), name="a.png")
    with django_capture_on_commit_callbacks(execute=True):
        responses = [
            reply(client, conversation, text="先看图"),
            reply(client, conversation, kind="image", media=image.pk),
            reply(client, conversation, text="如上"),
        ]
    assert [r.status_code for r in responses] == [202, 202, 202], responses[1].content
    assert [s["type"] for s in gewe.sent] == [1, 3, 1]
    assert MediaFile.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_sop_step_sends_its_uploaded_file(
    org, simulators_clean, live_server, settings, django_capture_on_commit_callbacks
):
    from apps.sop import services as sop
    from apps.sop.models import SopDelivery
    from tests.sop.conftest import make_contact, make_plan

    gewe = simulators_clean["gewe"]
    live_public_url(settings, live_server, gewe)
    account = gewe_login(org, gewe_connection(org, simulators_clean), gewe)
    make_contact(account, "wxid_c0")
    brochure = media_services.media_file_create(org=org, content=samples.pdf(), name="手册.pdf")
    plan = make_plan(org, [account], steps=[{"kind": "file", "media_file": brochure}])
    assert plan.steps.get().media_file == brochure
    sop.plan_activate(org=org, plan_id=plan.pk)
    with django_capture_on_commit_callbacks(execute=True):
        sop.sop_tick(org_id=org.pk)
    with django_capture_on_commit_callbacks(execute=True):
        sop.sop_tick(org_id=org.pk)
    delivery = SopDelivery.objects.get(plan=plan)
    assert delivery.status == SopDelivery.Status.SENT
    [sent] = gewe.sent
    assert sent["body"]["fileName"] == "手册.pdf"
    assert gewe.media.fetched[0]["sha256"] == brochure.checksum


@pytest.mark.django_db
def test_a_sop_step_refuses_another_orgs_file(org, other_org, member, simulators_clean):
    gewe = simulators_clean["gewe"]
    account = gewe_login(org, gewe_connection(org, simulators_clean), gewe)
    theirs = media_services.media_file_create(org=other_org, content=samples.pdf(), name="x.pdf")
    response = client_for(member, org).post(
        "/api/v1/sop/plans/",
        {
            "name": "Brochure",
            "trigger": "once",
            "accounts": [account.pk],
            "steps": [{"kind": "file", "media_file": theirs.pk}],
        },
        format="json",
    )
    assert response.status_code == 400, response.content
