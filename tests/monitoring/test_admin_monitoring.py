"""Monitoring admin: dashboard per organisation, alert list with the resolve action, isolation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.monitoring import alerting
from apps.monitoring.models import Alert, HealthSample
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.integrations.factories import IntegrationCallFactory
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_manager(org):
    user = UserFactory(is_staff=True, default_org=org)
    MembershipFactory(org=org, user=user, role=Role.MANAGER)
    return user


def _alert(org, title):
    return alerting.alert_raise(
        org=org, alert_type="service_down", severity="critical", service="gewe", title=title
    )


def test_dashboard_shows_status_sparkline_alerts_and_cost(client, org, other_org, staff_manager):
    HealthSample.objects.create(org=org, service="gewe", target="connection:1", ok=True)
    for latency in (500, 900):
        IntegrationCallFactory(org=org, service="gewe", latency_ms=latency)
    _alert(org, "Ours is down")
    _alert(other_org, "Theirs is down")
    client.force_login(staff_manager)
    response = client.get(reverse("admin:monitoring_alert_dashboard"))
    assert response.status_code == 200
    assert b"Ours is down" in response.content and b"Theirs is down" not in response.content
    assert b"<polyline" in response.content and b"mon-degraded" in response.content
    assert b"mon-cost-today" in response.content
    # Another organisation's dashboard answers 404.
    other = client.get(reverse("admin:monitoring_alert_dashboard"), {"org": other_org.id})
    assert other.status_code == 404


def test_dashboard_refuses_staff_without_an_org(client):
    client.force_login(UserFactory(is_staff=True))
    response = client.get(reverse("admin:monitoring_alert_dashboard"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_alert_list_is_scoped_and_resolve_action_works(client, org, other_org, staff_manager):
    ours = _alert(org, "Ours is down")
    theirs = _alert(other_org, "Theirs is down")
    client.force_login(staff_manager)
    listing = client.get(reverse("admin:monitoring_alert_changelist"))
    assert b"Ours is down" in listing.content and b"Theirs is down" not in listing.content
    assert client.get(reverse("admin:monitoring_alert_change", args=[theirs.id])).status_code in (
        302,
        403,
        404,
    )
    response = client.post(
        reverse("admin:monitoring_alert_changelist"),
        {"action": "resolve_selected", "_selected_action": [ours.id, theirs.id]},
    )
    assert response.status_code == 302
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert ours.resolved_at is not None and ours.resolved_by == staff_manager
    assert theirs.resolved_at is None


def test_every_monitoring_admin_page_loads_for_a_superuser(client, org):
    _alert(org, "x")
    HealthSample.objects.create(org=None, service="redis", ok=True)
    alerting.rules_ensure_defaults(org=org)
    alerting.config_get(org=org)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for model in ("alert", "alertrule", "monitoringconfig", "healthsample"):
        assert client.get(reverse(f"admin:monitoring_{model}_changelist")).status_code == 200
    alert = Alert.objects.get()
    assert client.get(reverse("admin:monitoring_alert_change", args=[alert.id])).status_code == 200
    assert client.get(reverse("admin:monitoring_alert_dashboard")).status_code == 200
