"""GeWe: received media downloaded through downloadImage/Voice/Video/File, media sends fetched
by the simulator from our signed URLs, image and link Moments (upload -> imgInfos)."""

from __future__ import annotations

import hashlib

import pytest

from apps.conversations.models import Message
from apps.integrations.clients.gewe import GeWeClient, default_download_base
from apps.media import services as media_services
from apps.media import signing
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import MomentPost
from tests.conversations.helpers import deliver, gewe_connection, gewe_login
from tests.media import samples
from tests.media.helpers import live_public_url


@pytest.fixture(autouse=True)
def _fast(settings, monkeypatch):
    from apps.integrations import services as integrations

    settings.WECHAT_SEND_DELAY_SCALE = 0
    monkeypatch.setitem(integrations.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


@pytest.fixture
def gewe(simulators_clean):
    return simulators_clean["gewe"]


@pytest.fixture
def connection(org, simulators_clean):
    return gewe_connection(org, simulators_clean)


@pytest.fixture
def account(org, connection, gewe):
    return gewe_login(org, connection, gewe)


def test_the_download_base_of_open_source_gewechat_is_port_2532():
    assert default_download_base("http://10.0.0.5:2531/v2/api") == "http://10.0.0.5:2532/download"
    assert default_download_base("https://api.example.com/gewe/v2/api") == (
        "https://api.example.com/download"
    )
    client = GeWeClient("http://h:2531/v2/api", "t", download_base="http://cdn:9000/dl/")
    assert client.download_base == "http://cdn:9000/dl"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "content", "path", "content_type"),
    [
        ("image", samples.png(seed=9), "/message/downloadImage", "image/png"),
        ("voice", samples.silk(), "/message/downloadVoice", "audio/silk"),
        ("video", samples.mp4(), "/message/downloadVideo", "video/mp4"),
        ("file", samples.pdf(), "/message/downloadFile", "application/pdf"),
    ],
)
def test_received_media_is_downloaded_through_the_gewe_api(
    org,
    connection,
    account,
    gewe,
    django_capture_on_commit_callbacks,
    kind,
    content,
    path,
    content_type,
):
    payload = gewe.build_media_message(
        kind=kind, from_wxid="wxid_cust0001", data=content, file_name="报价单.pdf"
    )
    deliver(connection, payload, django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org, kind=kind)
    assert message.media_status == Message.MediaStatus.READY, message.media_error
    assert message.media_file.content_type == content_type
    assert message.media_file.checksum == hashlib.sha256(content).hexdigest()
    assert len(gewe.requests_to(path)) == 1
    if kind == "file":
        assert message.media_file.original_name == "报价单.pdf"
    if kind == "voice":
        assert gewe.requests_to(path)[0].json["msgId"] == payload["Data"]["MsgId"]


@pytest.mark.django_db
def test_a_gewe_download_fault_leaves_a_visible_failure(
    org, connection, account, gewe, django_capture_on_commit_callbacks, settings
):
    settings.MEDIA_DOWNLOAD_MAX_ATTEMPTS = 1
    gewe.add_fault("error", path="/message/downloadImage")
    payload = gewe.build_media_message(kind="image", from_wxid="wxid_cust0001")
    deliver(connection, payload, django_capture_on_commit_callbacks)
    message = Message.objects.get(org=org, kind="image")
    assert message.media_status == Message.MediaStatus.FAILED
    assert message.media_error
    # HD first, then the normal size (not every image has HD): both refused.
    assert [r.json["type"] for r in gewe.requests_to("/message/downloadImage")] == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_gewe_fetches_our_signed_urls_for_media_sends(org, gewe, live_server, settings):
    """Client level: every media send makes the simulator fetch the signed URL."""
    from tests.integrations.test_clients_wechat import login

    live_public_url(settings, live_server, gewe)
    client = GeWeClient(f"{gewe.base_url}/v2/api", gewe.token, hosted=True)
    device = login(gewe, client)
    image = media_services.media_file_create(org=org, content=samples.png(seed=5), name="a.png")
    pdf = media_services.media_file_create(org=org, content=samples.pdf(), name="b.pdf")
    video = media_services.media_file_create(org=org, content=samples.mp4(), name="c.mp4")
    client.send_image(device, "wxid_a", signing.platform_url(image))
    client.send_file(device, "wxid_a", signing.platform_url(pdf), "b.pdf")
    client.send_video(
        device,
        "wxid_a",
        signing.platform_url(video),
        thumb_url=signing.platform_url(image),
        duration_s=7,
    )
    digests = [f["sha256"] for f in gewe.media.fetched]
    assert digests == [
        image.checksum,
        pdf.checksum,
        video.checksum,
        image.checksum,
    ]
    assert [s["type"] for s in gewe.sent] == [3, 6, 43]
    # A tampered URL is refused by our server, so the (strict) platform fails the send.
    bad = signing.platform_url(image).replace("/s/", "/s/9", 1)
    from apps.integrations.clients.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="文件下载失败"):
        client.send_image(device, "wxid_a", bad)
    assert gewe.media.fetched[-1]["status"] in (403, 404)


@pytest.mark.django_db(transaction=True)
def test_gewe_image_moment_uploads_then_posts_img_infos(
    org, account, gewe, live_server, settings, django_capture_on_commit_callbacks
):
    live_public_url(settings, live_server, gewe)
    media = [
        media_services.media_file_create(org=org, content=samples.png(seed=i), name="p.png")
        for i in range(2)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        post = wechat.moment_create(org=org, account=account, text="到货", image_media=media)
    post.refresh_from_db()
    assert post.status == MomentPost.Status.POSTED, post.error
    upload = gewe.requests_to("/sns/uploadSnsImage")[0].json
    assert len(upload["imgUrls"]) == 2
    posted = gewe.requests_to("/sns/sendImgSns")[0].json
    assert len(posted["imgInfos"]) == 2 and posted["content"] == "到货"
    assert [f["sha256"] for f in gewe.media.fetched] == [m.checksum for m in media]


@pytest.mark.django_db
def test_gewe_link_moment(org, account, gewe, django_capture_on_commit_callbacks):
    link = {"url": "https://shop.example.com/1", "title": "新品", "thumb_url": ""}
    with django_capture_on_commit_callbacks(execute=True):
        post = wechat.moment_create(org=org, account=account, text="", link=link)
    post.refresh_from_db()
    assert post.status == MomentPost.Status.POSTED, post.error
    assert gewe.requests_to("/sns/sendUrlSns")[0].json["linkUrl"] == link["url"]


@pytest.mark.django_db
def test_the_control_endpoint_posts_a_received_file(gewe):
    import base64

    import requests

    posted = []
    gewe.callback_url = "http://127.0.0.1:9/unused"
    # A stand-in on the session's simulator: a reset removes it (SimulatorServer.reset). Left in
    # place, it once made every later test's emit post nothing (simulate_customer, in CI).
    gewe.emit = lambda payload, times=1: posted.append(payload) or payload
    body = {
        "kind": "media",
        "media": "file",
        "from_wxid": "wxid_cust0001",
        "file_name": "合同.pdf",
        "data_base64": base64.b64encode(samples.pdf()).decode(),
    }
    response = requests.post(f"{gewe.base_url}/__sim__/emit", json=body, timeout=5)
    assert response.status_code == 200, response.text
    [payload] = posted
    assert payload["Data"]["MsgType"] == 49 and "合同.pdf" in payload["Data"]["Content"]["string"]
    token = gewe.media.path_for_msg(f"file:{payload['Data']['Content']['string']}")
    assert requests.get(f"{gewe.base_url}/download/{token}", timeout=5).content == samples.pdf()
