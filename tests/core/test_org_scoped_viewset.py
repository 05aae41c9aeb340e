"""The tenant base classes themselves, on a throwaway viewset over a real org-scoped model."""

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory, force_authenticate

from apps.conversations.models import CannedReply
from apps.core.api.views import OrgScopedViewSet
from apps.orgs.models import Role

pytestmark = pytest.mark.django_db


class _CannedSerializer(serializers.ModelSerializer):
    class Meta:
        model = CannedReply
        fields = ["id", "title", "text"]


class _CannedViewSet(OrgScopedViewSet):
    queryset = CannedReply.objects.all()
    serializer_class = _CannedSerializer
    write_role = Role.MANAGER


def _call(user, org, method, pk=None, data=None):
    factory = APIRequestFactory()
    path = "/x/" if pk is None else f"/x/{pk}/"
    request = getattr(factory, method)(
        path, data or {}, format="json", HTTP_X_ORGANIZATION=org.slug
    )
    force_authenticate(request, user=user)
    actions = {
        "get": "retrieve" if pk else "list",
        "post": "create",
        "patch": "partial_update",
        "delete": "destroy",
    }
    view = _CannedViewSet.as_view({method: actions[method]})
    return view(request, pk=pk) if pk else view(request)


def test_default_create_saves_into_the_active_org(member, org):
    response = _call(member, org, "post", data={"title": "Hi", "text": "Hello {nickname}"})
    assert response.status_code == 201, response.data
    assert CannedReply.objects.get(id=response.data["id"]).org_id == org.id


def test_another_orgs_row_is_404_for_read_update_delete(member, org, other_org):
    theirs = CannedReply.objects.create(org=other_org, title="Theirs", text="x")
    for method, data in (("get", None), ("patch", {"title": "Mine now"}), ("delete", None)):
        assert _call(member, org, method, pk=theirs.id, data=data).status_code == 404
    theirs.refresh_from_db()
    assert theirs.title == "Theirs"
    listed = _call(member, org, "get")
    assert listed.data["count"] == 0


def test_write_role_is_enforced_and_reads_allowed(org, make_member):
    viewer = make_member(Role.VIEWER)
    assert _call(viewer, org, "get").status_code == 200
    assert _call(viewer, org, "post", data={"title": "A", "text": "B"}).status_code == 403
    assert not CannedReply.objects.exists()
