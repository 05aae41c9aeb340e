"""The media admin: staff see only their organisations' files, and the preview is org-checked."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.media import services
from apps.media.models import MediaFile
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.media import samples
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_staff_see_only_their_orgs_files(client, org, other_org):
    manager = UserFactory(is_staff=True, default_org=org)
    MembershipFactory(org=org, user=manager, role=Role.MANAGER)
    mine = services.media_file_create(org=org, content=samples.png(), name="ours.png")
    theirs = services.media_file_create(org=other_org, content=samples.pdf(), name="theirs.pdf")
    client.force_login(manager)

    page = client.get("/admin/media/mediafile/")
    assert page.status_code == 200
    assert "ours.png" in page.content.decode() and "theirs.pdf" not in page.content.decode()
    detail = client.get(f"/admin/media/mediafile/{mine.pk}/change/")
    assert detail.status_code == 200
    assert f"/api/v1/media/files/{mine.pk}/content/?org={org.pk}" in detail.content.decode()
    assert client.get(f"/admin/media/mediafile/{theirs.pk}/change/").status_code in (302, 403, 404)
    assert client.get(f"/api/v1/media/files/{theirs.pk}/content/").status_code == 404


def _console(org, role):
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_members_upload_a_file_in_the_console(org, other_org):
    client = _console(org, Role.AGENT)
    assert client.get("/admin/media/mediafile/add/").status_code == 200
    upload = SimpleUploadedFile("价目表.png", samples.png(seed=5), content_type="image/png")
    response = client.post("/admin/media/mediafile/add/", {"file": upload, "kind": ""})
    assert response.status_code == 302
    stored = MediaFile.objects.get()
    assert stored.org == org and stored.kind == "image" and stored.original_name == "价目表.png"
    assert not MediaFile.objects.filter(org=other_org).exists()


def test_a_refused_upload_is_a_form_error_with_nothing_stored(org):
    client = _console(org, Role.AGENT)
    upload = SimpleUploadedFile("photo.png", b"%PDF-1.4 not a picture", content_type="image/png")
    response = client.post(
        "/admin/media/mediafile/add/",
        {"file": upload, "kind": "image"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "is not allowed for image" in response.content.decode()
    assert not MediaFile.objects.exists()


def test_viewers_cannot_upload(org):
    assert _console(org, Role.VIEWER).get("/admin/media/mediafile/add/").status_code == 403
