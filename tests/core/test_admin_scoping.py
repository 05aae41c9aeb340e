import pytest

from apps.accounts.models import AuditEvent
from apps.orgs.models import Membership, Role
from tests.accounts.factories import UserFactory
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_manager(org):
    user = UserFactory(is_staff=True, default_org=org)
    MembershipFactory(org=org, user=user, role=Role.MANAGER)
    return user


def test_staff_sees_only_their_orgs_rows(client, staff_manager, org, other_org, outsider):
    mine = Membership.objects.get(user=staff_manager)
    theirs = Membership.objects.get(user=outsider)
    AuditEvent.objects.create(org=org, action="org_updated")
    foreign_event = AuditEvent.objects.create(org=other_org, action="org_updated")
    client.force_login(staff_manager)

    page = client.get("/admin/orgs/membership/")
    assert page.status_code == 200
    assert staff_manager.email in page.content.decode()
    assert outsider.email not in page.content.decode()
    assert client.get(f"/admin/orgs/membership/{mine.id}/change/").status_code == 200
    assert client.get(f"/admin/orgs/membership/{theirs.id}/change/").status_code in (302, 403, 404)

    orgs_page = client.get("/admin/orgs/organization/").content.decode()
    assert "Acme Sales" in orgs_page and "Rival Sales" not in orgs_page
    assert client.get(f"/admin/orgs/organization/{other_org.id}/change/").status_code in (
        302,
        403,
        404,
    )

    # The audit log is for admins and owners; user accounts are the platform's (superusers).
    assert client.get("/admin/accounts/auditevent/").status_code == 403
    assert client.get("/admin/accounts/user/").status_code == 403

    admin_member = UserFactory(default_org=org)
    MembershipFactory(org=org, user=admin_member, role=Role.ADMIN)
    client.force_login(admin_member)
    audit = client.get("/admin/accounts/auditevent/")
    assert audit.status_code == 200
    assert client.get(f"/admin/accounts/auditevent/{foreign_event.id}/change/").status_code in (
        302,
        403,
        404,
    )


def test_agent_staff_without_manager_role_sees_nothing(client, org):
    user = UserFactory(is_staff=True)
    MembershipFactory(org=org, user=user, role=Role.AGENT)
    client.force_login(user)
    assert client.get("/admin/orgs/membership/").status_code == 403


def test_staff_cannot_move_a_row_into_another_org(client, org, other_org):
    admin_member = UserFactory(default_org=org)
    MembershipFactory(org=org, user=admin_member, role=Role.ADMIN)
    client.force_login(admin_member)
    target = Membership.objects.get(user=admin_member)
    response = client.post(
        f"/admin/orgs/membership/{target.id}/change/",
        {"org": other_org.id, "user": admin_member.id, "role": "admin"},
    )
    assert response.status_code in (200, 302)  # org and user are read-only: ignored
    target.refresh_from_db()
    assert target.org_id == org.id

    # A row of an object type with an editable org: the foreign organisation is no choice.
    response = client.post(
        "/admin/conversations/label/add/", {"org": other_org.id, "name": "x", "color": "#000000"}
    )
    assert response.status_code == 200  # form redisplayed with an error
    from apps.conversations.models import Label

    assert not Label.objects.filter(org=other_org).exists()


def test_superuser_sees_everything(client, org, other_org, outsider):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    page = client.get("/admin/orgs/membership/").content.decode()
    assert outsider.email in page


def test_admin_login_page_renders_for_anonymous(client):
    assert client.get("/admin/login/").status_code == 200
    assert client.get("/admin/").status_code == 302
