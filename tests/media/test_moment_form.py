"""The console's Moment form: image addresses one per line, uploaded images and the link's
fields instead of raw JSON; everything that can refuse the post answers as a form error."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.media.models import MediaFile
from apps.wechat_accounts.models import MomentPost
from tests.media import samples
from tests.media.helpers import ecloud_connection, ecloud_login

pytestmark = pytest.mark.django_db
URL = "/admin/wechat_accounts/momentpost/add/"


@pytest.fixture
def account(org, simulators_clean):
    return ecloud_login(org, ecloud_connection(org, simulators_clean), simulators_clean["ecloud"])


@pytest.fixture
def console(member):
    client = Client()
    client.force_login(member)
    return client


def _form(account, **fields):
    return {"account": account.pk, "text": "新品上市", "visibility": "public", **fields}


def test_the_form_has_fields_not_json(console, account):
    html = console.get(URL).content.decode()
    for name in ("image_urls", "image_uploads", "link_title", "link_url", "link_description"):
        assert f'name="{name}"' in html
    assert 'name="images"' not in html and 'name="link"' not in html


def test_image_addresses_and_uploads_make_one_post(console, account, org):
    upload = SimpleUploadedFile("新品.png", samples.png(seed=3), content_type="image/png")
    response = console.post(
        URL,
        _form(
            account,
            image_urls="https://cdn.example.com/a.png\n\n https://cdn.example.com/b.png ",
            image_uploads=[upload],
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    post = MomentPost.objects.get(org=org)
    stored = MediaFile.objects.get(org=org)
    assert post.images == [
        "https://cdn.example.com/a.png",
        "https://cdn.example.com/b.png",
        f"media:{stored.pk}",
    ]
    assert post.link == {}


def test_a_link_post_from_its_fields(console, account, org):
    response = console.post(
        URL,
        _form(account, link_title="春季新品", link_url="https://shop.example.com/p/1"),
    )
    assert response.status_code == 302
    post = MomentPost.objects.get(org=org)
    assert post.link == {"title": "春季新品", "url": "https://shop.example.com/p/1"}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"image_urls": "not an address"}, "Not a web address"),
        ({"link_title": "只有标题"}, "A link needs an address and a title."),
        ({"image_urls": "\n".join(f"https://x.cn/{i}.png" for i in range(10))}, "At most 9"),
        (
            {"image_urls": "https://x.cn/1.png", "link_title": "t", "link_url": "https://x.cn"},
            "images or a link, not both",
        ),
    ],
)
def test_invalid_input_is_a_form_error_and_stores_nothing(console, account, org, fields, error):
    response = console.post(URL, _form(account, **fields), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not MomentPost.objects.filter(org=org).exists()


def test_an_upload_that_is_not_an_image_is_refused_with_nothing_stored(console, account, org):
    upload = SimpleUploadedFile("报价.png", b"%PDF-1.4 not an image", content_type="image/png")
    response = console.post(URL, _form(account, image_uploads=[upload]), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "报价.png" in response.content.decode()
    assert not MediaFile.objects.filter(org=org).exists()
    assert not MomentPost.objects.filter(org=org).exists()


def test_a_platform_that_cannot_post_moments_is_a_form_error(console, account, org, monkeypatch):
    from apps.integrations.clients.ecloud import ECloudClient

    monkeypatch.setattr(ECloudClient, "moment_kinds", frozenset({"text"}))
    response = console.post(
        URL, _form(account, image_urls="https://x.cn/1.png"), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    assert "cannot post image Moments" in response.content.decode()
    assert not MomentPost.objects.filter(org=org).exists()
