"""Image (up to 9) and link Moments; kinds a platform cannot post are refused up front."""

from __future__ import annotations

import hashlib

import pytest

from apps.core.exceptions import ApplicationError
from apps.integrations.models import PlatformConnection
from apps.media import services as media_services
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import MomentPost
from tests.conftest import client_for
from tests.media import samples
from tests.media.helpers import ecloud_connection, ecloud_login, live_public_url
from tests.wechat_accounts.factories import WeChatAccountFactory


@pytest.fixture
def ecloud(simulators_clean):
    return simulators_clean["ecloud"]


@pytest.fixture
def account(org, simulators_clean, ecloud):
    return ecloud_login(org, ecloud_connection(org, simulators_clean), ecloud)


@pytest.mark.django_db(transaction=True)
def test_an_image_moment_sends_signed_urls_the_platform_fetches(
    org, member, account, ecloud, live_server, settings
):
    live_public_url(settings, live_server, ecloud)
    images = [samples.png(seed=i) for i in range(3)]
    media = [
        media_services.media_file_create(org=org, content=c, name=f"{i}.png")
        for i, c in enumerate(images)
    ]
    response = client_for(member, org).post(
        "/api/v1/moments/",
        {"account": account.pk, "text": "新品上市", "image_media": [m.pk for m in media]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["images"] == [f"media:{m.pk}" for m in media]
    post = MomentPost.objects.get(pk=response.json()["id"])
    assert post.status == MomentPost.Status.POSTED, post.error
    [sent] = ecloud.moments
    assert sent["kind"] == "image" and sent["body"]["content"] == "新品上市"
    urls = sent["body"]["paths"].split(";")
    assert all(u.startswith(f"{live_server.url}/media/s/") for u in urls)
    fetched = {f["url"]: f for f in ecloud.media.fetched}
    assert [fetched[u]["sha256"] for u in urls] == [hashlib.sha256(c).hexdigest() for c in images]


@pytest.mark.django_db
def test_a_link_moment_goes_to_the_platform(
    org, account, ecloud, django_capture_on_commit_callbacks
):
    link = {"url": "https://shop.example.com/p/1", "title": "春季新品", "description": "限时"}
    with django_capture_on_commit_callbacks(execute=True):
        post = wechat.moment_create(org=org, account=account, text="看看", link=link)
    post.refresh_from_db()
    assert post.status == MomentPost.Status.POSTED, post.error
    body = ecloud.requests_to("/snsSendUrl")[0].json
    assert body["title"] == "春季新品" and body["url"] == link["url"]


@pytest.mark.django_db
def test_more_than_nine_images_are_refused(org, account, member):
    media = [
        media_services.media_file_create(org=org, content=samples.png(seed=i), name="a.png")
        for i in range(10)
    ]
    response = client_for(member, org).post(
        "/api/v1/moments/",
        {"account": account.pk, "image_media": [m.pk for m in media]},
        format="json",
    )
    assert response.status_code == 400
    assert MomentPost.objects.count() == 0


@pytest.mark.django_db
def test_a_file_that_is_not_an_image_or_another_orgs_image_is_refused(
    org, other_org, account, member
):
    pdf = media_services.media_file_create(org=org, content=samples.pdf(), name="a.pdf")
    theirs = media_services.media_file_create(org=other_org, content=samples.png(), name="b.png")
    client = client_for(member, org)
    for media in (pdf, theirs):
        response = client.post(
            "/api/v1/moments/", {"account": account.pk, "image_media": [media.pk]}, format="json"
        )
        assert response.status_code == 400, response.json()
        assert "image_media" in response.json()["error"]["fields"]
    assert MomentPost.objects.count() == 0


@pytest.mark.django_db
def test_open_source_gewe_refuses_every_moment_up_front(org, member):
    account = WeChatAccountFactory(
        org=org, connection__provider=PlatformConnection.Provider.GEWE, connection__capabilities=[]
    )
    for kwargs in ({"text": "hi"}, {"images": ["https://cdn.example.com/a.png"]}):
        with pytest.raises(ApplicationError) as refused:
            wechat.moment_create(org=org, account=account, **kwargs)
        assert refused.value.code == "not_supported"
    assert MomentPost.objects.count() == 0
