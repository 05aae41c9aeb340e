"""The upload API and the members' view: validation, limits, org checks."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.media.models import MediaFile
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.media import samples

URL = "/api/v1/media/files/"


def upload(client, content: bytes, name: str = "photo.png", **extra):
    return client.post(
        URL, {"file": SimpleUploadedFile(name, content), **extra}, format="multipart"
    )


def stored_names() -> list[str]:
    storage = storages["default"]
    names: list[str] = []

    def walk(path: str) -> None:
        dirs, files = storage.listdir(path)
        names.extend(f"{path}/{f}".lstrip("/") for f in files)
        for d in dirs:
            walk(f"{path}/{d}".lstrip("/"))

    walk("")
    return names


@pytest.mark.django_db
def test_upload_an_image_stores_it_with_the_sniffed_type_and_checksum(api_client, org, member):
    content = samples.png()
    response = upload(api_client, content, name="客户照片.png")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "image"
    assert body["content_type"] == "image/png"
    assert body["original_name"] == "客户照片.png"
    assert body["size"] == len(content)
    assert body["checksum"] == hashlib.sha256(content).hexdigest()
    assert body["source"] == "upload"
    media = MediaFile.objects.get(pk=body["id"])
    assert media.org == org and media.created_by == member
    assert media.storage_key.startswith(f"org-{org.pk}/")
    with storages["default"].open(media.storage_key, "rb") as handle:
        assert handle.read() == content


@pytest.mark.django_db
def test_the_type_comes_from_the_bytes_not_the_name(api_client):
    response = upload(api_client, samples.pdf(), name="looks-like-an-image.png")
    assert response.status_code == 201
    assert response.json()["content_type"] == "application/pdf"
    assert response.json()["kind"] == "file"


@pytest.mark.django_db
def test_a_name_with_a_path_is_cleaned(api_client):
    response = upload(api_client, samples.pdf(), name="../../etc/报价单.pdf")
    assert response.status_code == 201
    assert response.json()["original_name"] == "报价单.pdf"
    response = upload(api_client, samples.pdf(), name="C:\\Users\\me\\brochure.pdf")
    assert response.json()["original_name"] == "brochure.pdf"


@pytest.mark.django_db
def test_a_zero_byte_file_is_refused_and_nothing_is_stored(api_client):
    response = upload(api_client, b"", name="empty.png")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_file"
    assert MediaFile.objects.count() == 0
    assert stored_names() == []


@pytest.mark.django_db
def test_a_file_over_the_limit_answers_413_and_nothing_is_stored(api_client, settings):
    settings.MEDIA_MAX_UPLOAD_BYTES = 1000
    response = upload(api_client, samples.png() + b"\x00" * 2000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert MediaFile.objects.count() == 0
    assert stored_names() == []


@pytest.mark.django_db
def test_a_body_far_over_the_limit_is_refused_before_it_is_parsed(api_client, settings):
    settings.MEDIA_MAX_UPLOAD_BYTES = 1000
    response = upload(api_client, b"\x89PNG" + b"\x00" * 200_000)
    assert response.status_code == 413
    assert stored_names() == []


@pytest.mark.django_db
def test_the_limit_is_ten_megabytes_by_default(settings):
    assert settings.MEDIA_MAX_UPLOAD_BYTES == 10 * 1024 * 1024


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (samples.exe(), None),
        (samples.exe(), "file"),
        (samples.pdf(), "image"),
        (samples.png(), "video"),
        (samples.png(), "voice"),
        (bytes(range(256)) * 4, None),  # an unknown binary
    ],
)
def test_a_type_the_kind_does_not_allow_answers_400(api_client, content, kind):
    extra = {"kind": kind} if kind else {}
    response = upload(api_client, content, name="x.png", **extra)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "unsupported_type"
    assert MediaFile.objects.count() == 0
    assert stored_names() == []


@pytest.mark.django_db
def test_allowed_kinds(api_client):
    assert upload(api_client, samples.mp4(), name="v.mp4").json()["kind"] == "video"
    assert upload(api_client, samples.silk(), name="v.silk").json()["kind"] == "voice"
    text = upload(api_client, "价格表\n1,2,3\n".encode(), name="prices.txt")
    assert text.json()["content_type"] == "text/plain"
    assert upload(api_client, samples.png(), name="p.png", kind="file").json()["kind"] == "file"


@pytest.mark.django_db
def test_a_viewer_cannot_upload(org, make_member):
    viewer = make_member(Role.VIEWER)
    response = upload(client_for(viewer, org), samples.png())
    assert response.status_code == 403


@pytest.mark.django_db
def test_members_fetch_the_bytes_and_another_org_gets_404(api_client, org, other_org, outsider):
    content = samples.png(seed=7)
    media_id = upload(api_client, content).json()["id"]
    response = api_client.get(f"{URL}{media_id}/content/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"

    rival = client_for(outsider, other_org)
    assert rival.get(f"{URL}{media_id}/content/").status_code == 404
    assert rival.get(f"{URL}{media_id}/").status_code == 404
    assert rival.get(f"{URL}{media_id}/content/?org={org.pk}").status_code == 404
    assert media_id not in [x["id"] for x in rival.get(URL).json()["results"]]


@pytest.mark.django_db
def test_the_org_may_come_from_the_query_for_img_tags(org, member, other_org):
    from tests.orgs.factories import MembershipFactory

    media_id = upload(client_for(member, org), samples.png()).json()["id"]
    # The user's default org is another one: ?org= picks the file's organisation.
    MembershipFactory(org=other_org, user=member, role=Role.AGENT)
    member.default_org = other_org
    member.save(update_fields=["default_org"])
    bare = client_for(member)
    assert bare.get(f"{URL}{media_id}/content/").status_code == 404
    assert bare.get(f"{URL}{media_id}/content/?org={org.pk}").status_code == 200


@pytest.mark.django_db
def test_files_a_browser_could_run_are_served_as_downloads(api_client):
    media_id = upload(api_client, samples.html(), name="page.html", kind="file").json()["id"]
    response = api_client.get(f"{URL}{media_id}/content/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_list_is_scoped_and_filterable(api_client, django_assert_max_num_queries):
    upload(api_client, samples.png())
    upload(api_client, samples.pdf(), name="a.pdf")
    with django_assert_max_num_queries(6):
        response = api_client.get(URL, {"kind": "file"})
    assert [x["original_name"] for x in response.json()["results"]] == ["a.pdf"]
