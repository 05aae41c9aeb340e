"""The media admin: staff see only their organisations' files, and the preview is org-checked."""

from __future__ import annotations

import pytest

from apps.media import services
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
    assert client.get("/admin/media/mediafile/add/").status_code == 403
