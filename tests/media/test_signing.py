"""Signed, expiring platform URLs: the bytes for a valid signature, 403 otherwise."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from apps.media import services, signing
from tests.media import samples


@pytest.fixture
def media(org):
    return services.media_file_create(org=org, content=samples.png(seed=3), name="a.png")


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.mark.django_db
def test_a_signed_url_serves_the_file_without_a_session(client, media, settings):
    settings.PUBLIC_BASE_URL = "https://sales.example.com"
    url = signing.platform_url(media)
    assert url.startswith("https://sales.example.com/media/s/")
    assert url.endswith(".png")
    response = client.get(path_of(url))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == samples.png(seed=3)


@pytest.mark.django_db
def test_an_expired_signature_answers_403(client, media):
    url = signing.signed_path(media, ttl=60, now=time.time() - 120)
    assert client.get(url).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("part", ["signature", "expires", "file_id"])
def test_a_tampered_url_answers_403(client, media, org, part):
    other = services.media_file_create(org=org, content=samples.pdf(), name="b.pdf")
    _, _, _, file_id, expires, signature, name = signing.signed_path(media).split("/")
    if part == "signature":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    elif part == "expires":
        expires = str(int(expires) + 3600)
    else:
        file_id = str(other.pk)
    response = client.get(f"/media/s/{file_id}/{expires}/{signature}/{name}")
    assert response.status_code == 403
    assert b"PNG" not in response.content


@pytest.mark.django_db
def test_a_replaced_file_invalidates_old_urls(client, media):
    url = signing.signed_path(media)
    media.checksum = "0" * 64
    media.save(update_fields=["checksum"])
    assert client.get(url).status_code == 403


@pytest.mark.django_db
def test_the_signed_view_serves_nothing_else(client, media):
    assert client.get("/media/s/1/2/3/").status_code == 404
    assert client.post(signing.signed_path(media)).status_code == 405
