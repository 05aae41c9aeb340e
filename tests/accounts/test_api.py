import pytest
from django.urls import reverse

from apps.accounts.models import AuditEvent, User
from apps.orgs.models import Membership, Role
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = {
    "email": "Alice@Example.com",
    "password": "s3cure-Passw0rd!",
    "name": "Alice",
    "organization_name": "Alice Sales",
}


def login(client, email, password=DEFAULT_PASSWORD):
    return client.post(reverse("auth-login"), {"email": email, "password": password})


def test_register_creates_user_org_and_owner_membership(anon_client):
    response = anon_client.post(reverse("auth-register"), REGISTER)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == "alice@example.com"
    assert body["organization"]["name"] == "Alice Sales"
    assert body["organization"]["slug"] == "alice-sales"
    assert body["access"] and body["refresh"]
    user = User.objects.get(email="alice@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert user.default_org_id == membership.org_id == body["organization"]["id"]


def test_register_duplicate_email_is_409_and_creates_nothing(anon_client):
    anon_client.post(reverse("auth-register"), REGISTER)
    response = anon_client.post(reverse("auth-register"), {**REGISTER, "organization_name": "X"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"
    assert User.objects.count() == 1


def test_register_weak_password_reports_field_error(anon_client):
    response = anon_client.post(reverse("auth-register"), {**REGISTER, "password": "123"})
    assert response.status_code == 400
    assert "password" in response.json()["error"]["fields"]
    assert not User.objects.exists()


def test_register_missing_fields_uses_the_one_error_shape(anon_client):
    response = anon_client.post(reverse("auth-register"), {"email": "not-an-email"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) >= {"email", "password", "name", "organization_name"}


def test_login_returns_tokens_and_audits(anon_client, member):
    response = login(anon_client, member.email)
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert AuditEvent.objects.filter(action="login_succeeded", actor=member).count() == 1


def test_login_bad_password_is_401_and_audited(anon_client, member):
    response = login(anon_client, member.email, "wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert AuditEvent.objects.filter(action="login_failed").count() == 1


def test_login_throttled_per_email_with_retry_after(anon_client, member, settings):
    settings.LOGIN_FAILURES_PER_EMAIL = 3
    for _ in range(3):
        assert login(anon_client, member.email, "wrong").status_code == 401
    response = login(anon_client, member.email)  # Even the right password is refused now.
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # Another e-mail from another address is unaffected.
    other = UserFactory()
    assert login(anon_client, other.email).status_code == 200


def test_login_throttled_per_ip(anon_client, settings):
    settings.LOGIN_FAILURES_PER_IP = 4
    for n in range(4):
        login(anon_client, f"nobody{n}@example.com", "wrong")
    assert login(anon_client, "someone-else@example.com", "x").status_code == 429


def test_refresh_rotates_and_old_refresh_is_blacklisted(anon_client, member):
    tokens = login(anon_client, member.email).json()
    response = anon_client.post(reverse("auth-refresh"), {"refresh": tokens["refresh"]})
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["refresh"] != tokens["refresh"]
    again = anon_client.post(reverse("auth-refresh"), {"refresh": tokens["refresh"]})
    assert again.status_code == 401


def test_logout_blacklists_refresh(anon_client, member):
    tokens = login(anon_client, member.email).json()
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = anon_client.post(reverse("auth-logout"), {"refresh": tokens["refresh"]})
    assert response.status_code == 205
    assert (
        anon_client.post(reverse("auth-refresh"), {"refresh": tokens["refresh"]}).status_code == 401
    )


def test_logout_with_someone_elses_refresh_is_rejected(anon_client, member, outsider):
    mine = login(anon_client, member.email).json()
    theirs = login(anon_client, outsider.email).json()
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {mine['access']}")
    response = anon_client.post(reverse("auth-logout"), {"refresh": theirs["refresh"]})
    assert response.status_code == 400
    assert (
        anon_client.post(reverse("auth-refresh"), {"refresh": theirs["refresh"]}).status_code == 200
    )


def test_jwt_authenticates_me(anon_client, member):
    tokens = login(anon_client, member.email).json()
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = anon_client.get(reverse("auth-me"))
    assert response.status_code == 200
    assert response.json()["email"] == member.email


def test_me_requires_auth(anon_client):
    assert anon_client.get(reverse("auth-me")).status_code == 401


def test_me_patch_name_and_default_org(api_client, member, org, other_org):
    response = api_client.patch(reverse("auth-me"), {"name": "New Name"})
    assert response.status_code == 200 and response.json()["name"] == "New Name"
    # Switching the default to an organisation the user is not in is refused.
    response = api_client.patch(reverse("auth-me"), {"default_org": other_org.id})
    assert response.status_code == 400
    member.refresh_from_db()
    assert member.default_org_id == org.id


def test_password_change(api_client, member, anon_client):
    url = reverse("auth-password")
    bad = api_client.post(url, {"old_password": "nope", "new_password": "An0ther-Secret!"})
    assert bad.status_code == 400 and "old_password" in bad.json()["error"]["fields"]
    weak = api_client.post(url, {"old_password": DEFAULT_PASSWORD, "new_password": "123"})
    assert weak.status_code == 400 and "new_password" in weak.json()["error"]["fields"]
    ok = api_client.post(url, {"old_password": DEFAULT_PASSWORD, "new_password": "An0ther-Secret!"})
    assert ok.status_code == 200
    assert login(anon_client, member.email, "An0ther-Secret!").status_code == 200
    assert AuditEvent.objects.filter(action="password_changed", actor=member).exists()


def test_audit_log_is_admin_only_and_org_scoped(
    api_client, make_member, org, outsider, anon_client
):
    login(anon_client, outsider.email)  # An event of the other organisation.
    api_client.patch(reverse("org-current"), {"name": "Renamed"})
    response = api_client.get("/api/v1/audit-events/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert rows and all(
        row["actor"] is None or row["actor"]["email"] != outsider.email for row in rows
    )
    from tests.conftest import client_for

    agent = make_member(Role.AGENT)
    assert client_for(agent, org).get("/api/v1/audit-events/").status_code == 403
