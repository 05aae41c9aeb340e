from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.orgs.models import Invitation, Membership, Role
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_list_my_orgs_with_roles(api_client, member, org, other_org):
    MembershipFactory(org=other_org, user=member, role=Role.VIEWER)
    response = api_client.get(reverse("org-list"))
    assert response.status_code == 200
    roles = {row["slug"]: row["role"] for row in response.json()["results"]}
    assert roles == {"acme": "admin", "rival": "viewer"}


def test_current_org_defaults_to_users_default(member, org):
    response = client_for(member).get(reverse("org-current"))
    assert response.status_code == 200
    assert response.json()["slug"] == "acme"


def test_x_organization_switches_by_slug_and_id(member, org, other_org):
    MembershipFactory(org=other_org, user=member, role=Role.VIEWER)
    client = client_for(member)
    assert client.get(reverse("org-current"), HTTP_X_ORGANIZATION="rival").json()["slug"] == "rival"
    by_id = client.get(reverse("org-current"), HTTP_X_ORGANIZATION=str(other_org.id))
    assert by_id.json()["slug"] == "rival"


def test_x_organization_of_non_member_is_404(member, other_org):
    response = client_for(member).get(reverse("org-current"), HTTP_X_ORGANIZATION="rival")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (
        client_for(member).get(reverse("org-current"), HTTP_X_ORGANIZATION="nope").status_code
        == 404
    )


def test_user_without_membership_gets_404():
    user = UserFactory()
    assert client_for(user).get(reverse("org-current")).status_code == 404


def test_patch_current_org_needs_admin(org, make_member):
    manager = make_member(Role.MANAGER)
    response = client_for(manager, org).patch(reverse("org-current"), {"name": "X"})
    assert response.status_code == 403
    admin = make_member(Role.ADMIN)
    response = client_for(admin, org).patch(
        reverse("org-current"), {"name": "Acme 2", "timezone": "Europe/Berlin"}
    )
    assert response.status_code == 200
    assert response.json()["timezone"] == "Europe/Berlin"
    bad = client_for(admin, org).patch(reverse("org-current"), {"timezone": "Mars/Base"})
    assert bad.status_code == 400 and "timezone" in bad.json()["error"]["fields"]


def test_members_list_is_org_scoped(api_client, org, outsider, make_member):
    make_member(Role.AGENT)
    response = api_client.get("/api/v1/orgs/members/")
    emails = {row["user"]["email"] for row in response.json()["results"]}
    assert outsider.email not in emails and len(emails) == 2


def test_members_list_query_count(api_client, make_member, django_assert_max_num_queries):
    for _ in range(5):
        make_member(Role.AGENT)
    with django_assert_max_num_queries(6):
        assert api_client.get("/api/v1/orgs/members/").status_code == 200


def test_other_orgs_membership_is_404(api_client, outsider, other_org):
    theirs = Membership.objects.get(user=outsider, org=other_org)
    url = f"/api/v1/orgs/members/{theirs.id}/"
    assert api_client.get(url).status_code == 404
    assert api_client.patch(url, {"role": "viewer"}).status_code == 404
    assert api_client.delete(url).status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == Role.OWNER


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT, Role.VIEWER])
def test_only_owner_or_admin_changes_roles(org, make_member, role):
    actor = make_member(role)
    target = Membership.objects.get(user=make_member(Role.AGENT))
    response = client_for(actor, org).patch(
        f"/api/v1/orgs/members/{target.id}/", {"role": "manager"}
    )
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.role == Role.AGENT


def test_admin_changes_role_and_removes_member(api_client, make_member):
    target = Membership.objects.get(user=make_member(Role.AGENT))
    response = api_client.patch(f"/api/v1/orgs/members/{target.id}/", {"role": "manager"})
    assert response.status_code == 200 and response.json()["role"] == "manager"
    assert api_client.delete(f"/api/v1/orgs/members/{target.id}/").status_code == 204
    assert not Membership.objects.filter(id=target.id).exists()


def test_admin_cannot_touch_owner_or_grant_owner(api_client, owner, make_member):
    owner_membership = Membership.objects.get(user=owner)
    assert (
        api_client.patch(
            f"/api/v1/orgs/members/{owner_membership.id}/", {"role": "agent"}
        ).status_code
        == 403
    )
    target = Membership.objects.get(user=make_member(Role.AGENT))
    assert (
        api_client.patch(f"/api/v1/orgs/members/{target.id}/", {"role": "owner"}).status_code == 403
    )


def test_last_owner_cannot_be_demoted_or_removed(org, owner):
    client = client_for(owner, org)
    mine = Membership.objects.get(user=owner)
    response = client.patch(f"/api/v1/orgs/members/{mine.id}/", {"role": "admin"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "last_owner"
    assert client.delete(f"/api/v1/orgs/members/{mine.id}/").status_code == 409
    # With a second owner the first may step down.
    second = UserFactory()
    MembershipFactory(org=org, user=second, role=Role.OWNER)
    assert client.patch(f"/api/v1/orgs/members/{mine.id}/", {"role": "admin"}).status_code == 200


def test_invalid_role_is_400(api_client, make_member):
    target = Membership.objects.get(user=make_member(Role.AGENT))
    response = api_client.patch(f"/api/v1/orgs/members/{target.id}/", {"role": "emperor"})
    assert response.status_code == 400 and "role" in response.json()["error"]["fields"]


def test_invitation_flow_new_user(api_client, org, anon_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/v1/orgs/invitations/", {"email": "New@Example.com", "role": "agent"}
        )
    assert response.status_code == 201
    token = response.json()["token"]
    assert len(mail.outbox) == 1 and token in mail.outbox[0].body
    accept = anon_client.post(
        reverse("org-invitation-accept"),
        {"token": token, "name": "Newbie", "password": "Sup3r-Secret-1"},
    )
    assert accept.status_code == 201, accept.content
    membership = Membership.objects.get(user__email="new@example.com")
    assert membership.org == org and membership.role == Role.AGENT
    again = anon_client.post(reverse("org-invitation-accept"), {"token": token})
    assert again.status_code == 409 and again.json()["error"]["code"] == "invitation_accepted"
    listed = api_client.get("/api/v1/orgs/invitations/").json()["results"]
    assert listed[0]["status"] == "accepted" and "token" not in listed[0]


def test_invitation_accept_by_signed_in_invitee(api_client, org):
    invitee = UserFactory(email="bob@example.com")
    token = api_client.post(
        "/api/v1/orgs/invitations/", {"email": "bob@example.com", "role": "viewer"}
    ).json()["token"]
    stranger = UserFactory()
    assert (
        client_for(stranger).post(reverse("org-invitation-accept"), {"token": token}).status_code
        == 404
    )
    response = client_for(invitee).post(reverse("org-invitation-accept"), {"token": token})
    assert response.status_code == 201
    assert Membership.objects.get(user=invitee).role == Role.VIEWER


def test_invitation_expired_and_revoked(api_client, anon_client, org):
    token = api_client.post(
        "/api/v1/orgs/invitations/", {"email": "c@example.com", "role": "agent"}
    ).json()["token"]
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = anon_client.post(
        reverse("org-invitation-accept"),
        {"token": token, "name": "C", "password": "Sup3r-Secret-1"},
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "invitation_expired"
    created = api_client.post(
        "/api/v1/orgs/invitations/", {"email": "d@example.com", "role": "agent"}
    ).json()
    assert api_client.post(f"/api/v1/orgs/invitations/{created['id']}/revoke/").status_code == 200
    assert api_client.post(f"/api/v1/orgs/invitations/{created['id']}/revoke/").status_code == 409
    response = anon_client.post(
        reverse("org-invitation-accept"),
        {"token": created["token"], "name": "D", "password": "Sup3r-Secret-1"},
    )
    assert response.status_code == 409
    assert not Membership.objects.filter(user__email="d@example.com").exists()


def test_unknown_invitation_token_is_404(anon_client):
    response = anon_client.post(reverse("org-invitation-accept"), {"token": "nope"})
    assert response.status_code == 404


def test_invitations_are_admin_only_and_org_scoped(org, other_org, make_member, outsider):
    theirs = (
        client_for(outsider, other_org)
        .post("/api/v1/orgs/invitations/", {"email": "x@example.com", "role": "agent"})
        .json()
    )
    admin = make_member(Role.ADMIN)
    client = client_for(admin, org)
    assert client.get(f"/api/v1/orgs/invitations/{theirs['id']}/").status_code == 404
    assert client.post(f"/api/v1/orgs/invitations/{theirs['id']}/revoke/").status_code == 404
    assert client.get("/api/v1/orgs/invitations/").json()["count"] == 0
    manager = make_member(Role.MANAGER)
    assert client_for(manager, org).get("/api/v1/orgs/invitations/").status_code == 403
    assert (
        client_for(manager, org)
        .post("/api/v1/orgs/invitations/", {"email": "y@example.com", "role": "agent"})
        .status_code
        == 403
    )


def test_admin_cannot_invite_owner(api_client):
    response = api_client.post(
        "/api/v1/orgs/invitations/", {"email": "z@example.com", "role": "owner"}
    )
    assert response.status_code == 403


def test_inviting_existing_member_is_409(api_client, make_member):
    existing = make_member(Role.AGENT)
    response = api_client.post(
        "/api/v1/orgs/invitations/", {"email": existing.email, "role": "agent"}
    )
    assert response.status_code == 409
