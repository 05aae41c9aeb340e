"""Console actions follow the page's role policy (apps/core/admin.py, ``OrgScopedAdmin``): an
action that changes something is offered to, and run for, only the roles that may change the
page's rows. A viewer who may read the connections page cannot rotate their secrets, log a WeChat
account out or start an SOP plan by posting the action; read-only actions (export, marking one's
own notifications read) stay with every reader."""

from __future__ import annotations

import pytest

from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.integrations.factories import PlatformConnectionFactory
from tests.orgs.factories import MembershipFactory
from tests.sop.factories import SopPlanFactory

pytestmark = pytest.mark.django_db


def _member(org, role):
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=role)
    return user


def _actions(client, url) -> list[str]:
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["action_form"]  # None when no action is offered
    return list(form.fields["action"].choices) if form is not None else []


def test_a_viewer_reads_the_page_but_runs_no_changing_action(client, org):
    connection = PlatformConnectionFactory(org=org)
    plan = SopPlanFactory(org=org)
    client.force_login(_member(org, Role.VIEWER))

    offered = [name for name, _label in _actions(client, "/admin/integrations/platformconnection/")]
    assert "rotate_webhook_secrets" not in offered and "restart_connections" not in offered

    old = connection.webhook_secret
    client.post(
        "/admin/integrations/platformconnection/",
        {"action": "rotate_webhook_secrets", "_selected_action": [connection.id]},
    )
    connection.refresh_from_db()
    assert connection.webhook_secret == old

    status = plan.status
    client.post("/admin/sop/sopplan/", {"action": "activate", "_selected_action": [plan.id]})
    plan.refresh_from_db()
    assert plan.status == status


def test_an_admin_is_offered_the_changing_actions(client, org):
    client.force_login(_member(org, Role.ADMIN))
    offered = [name for name, _label in _actions(client, "/admin/integrations/platformconnection/")]
    assert {"test_connections", "restart_connections", "rotate_webhook_secrets"} <= set(offered)


def test_read_only_actions_stay_with_readers(client, org):
    client.force_login(_member(org, Role.VIEWER))
    offered = [name for name, _label in _actions(client, "/admin/sop/sopdelivery/")]
    assert "export_csv" in offered
    offered = [name for name, _label in _actions(client, "/admin/monitoring/notification/")]
    assert "mark_read" in offered
