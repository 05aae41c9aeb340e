import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from apps.billing import services
from apps.billing.models import Budget, Kind, ModelPrice, Reservation
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 4, 15, 4, 0, tzinfo=dt.UTC)

MODELS = ["modelprice", "costledger", "budget", "reservation", "budgetalert"]


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_manager(org):
    user = UserFactory(is_staff=True, default_org=org)
    MembershipFactory(org=org, user=user, role=Role.MANAGER)
    return user


@pytest.fixture
def usage(org, other_org):
    ModelPriceFactory(model="m-chat")
    for o, rid in ((org, "mine-req"), (other_org, "their-req")):
        resv = services.reserve(
            org=o,
            provider="p",
            model="m-chat",
            kind=Kind.CHAT,
            estimated_input_tokens=1000,
            estimated_output_tokens=0,
            request_id=rid,
            wechat_account_id=4,
        )
        services.settle(reservation=resv, input_tokens=1000, output_tokens=0)
    services.reserve(
        org=other_org,
        provider="p",
        model="m-chat",
        kind=Kind.CHAT,
        estimated_input_tokens=1,
        estimated_output_tokens=1,
        request_id="held-x",
    )
    BudgetFactory(org=org, money_limit=Decimal("1"), name="Acme monthly")
    BudgetFactory(org=other_org, money_limit=Decimal("1"), name="Rival monthly")


def test_every_billing_admin_page_loads_for_a_superuser(client, superuser, usage):
    client.force_login(superuser)
    for model in MODELS:
        response = client.get(reverse(f"admin:billing_{model}_changelist"))
        assert response.status_code == 200, model
        add = client.get(reverse(f"admin:billing_{model}_add"))
        assert add.status_code == (200 if model in ("modelprice", "budget") else 403), model
    budget = Budget.objects.first()
    assert client.get(reverse("admin:billing_budget_change", args=[budget.id])).status_code == 200
    response = client.get(reverse("admin:billing_costledger_usage"))
    assert response.status_code == 200
    assert b"<svg" in response.content and b"usage-chart" in response.content


def test_usage_page_shows_the_chart_against_the_budget(client, org, superuser, usage):
    client.force_login(superuser)
    response = client.get(
        reverse("admin:billing_costledger_usage"), {"org": org.id, "month": "2025-04"}
    )
    assert response.status_code == 200
    chart = response.context["chart"]
    assert len(chart["bars"]) == 30 and chart["total"] == Decimal("0.008")
    assert chart["budget_y"] is not None and chart["limit"] == Decimal("1")
    assert b'class="budget"' in response.content and b"Acme monthly" in response.content
    march = client.get(
        reverse("admin:billing_costledger_usage"), {"org": org.id, "month": "2025-03"}
    )
    assert march.context["chart"]["total"] == 0 and len(march.context["chart"]["bars"]) == 31


def test_staff_see_only_their_orgs_rows(client, org, other_org, staff_manager, usage):
    client.force_login(staff_manager)
    ledger = client.get(reverse("admin:billing_costledger_changelist"))
    assert ledger.status_code == 200
    assert b"mine-req" in ledger.content and b"their-req" not in ledger.content
    budgets = client.get(reverse("admin:billing_budget_changelist"))
    assert b"Acme monthly" in budgets.content and b"Rival monthly" not in budgets.content
    reservations = client.get(reverse("admin:billing_reservation_changelist"))
    assert b"held-x" not in reservations.content
    theirs = Budget.objects.get(org=other_org)
    change = client.get(reverse("admin:billing_budget_change", args=[theirs.id]))
    assert change.status_code in (302, 403, 404)


def test_staff_usage_page_is_scoped(client, org, other_org, staff_manager, usage):
    client.force_login(staff_manager)
    response = client.get(reverse("admin:billing_costledger_usage"))
    assert response.status_code == 200 and response.context["org"] == org
    assert [o.id for o in response.context["orgs"]] == [org.id]
    assert b"Rival monthly" not in response.content
    other = client.get(reverse("admin:billing_costledger_usage"), {"org": other_org.id})
    assert other.status_code == 404


def test_users_without_an_organisation_are_sent_to_login(client):
    user = UserFactory(is_staff=True)  # is_staff alone opens nothing
    client.force_login(user)
    response = client.get(reverse("admin:billing_costledger_usage"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_members_sign_in_without_is_staff(client, member):
    assert not member.is_staff
    client.force_login(member)
    assert client.get(reverse("admin:billing_costledger_usage")).status_code == 200


def test_global_prices_are_platform_internals(client, org, staff_manager, member):
    global_price = ModelPriceFactory(model="g-admin")
    override = ModelPriceFactory(model="o-admin", org=org)
    url = reverse("admin:billing_modelprice_change", args=[global_price.id])
    for user in (staff_manager, member):  # a manager and an admin of the organisation
        client.force_login(user)
        listing = client.get(reverse("admin:billing_modelprice_changelist")).content.decode()
        assert "o-admin" in listing and "g-admin" not in listing
        assert client.get(url).status_code in (302, 403, 404)
        response = client.post(url, {"provider": "*", "model": "g-admin", "unit_price": "9"})
        assert response.status_code in (302, 403, 404)
    global_price.refresh_from_db()
    assert global_price.unit_price != 9
    # A manager reads the organisation's prices; an admin changes them.
    client.force_login(staff_manager)
    override_url = reverse("admin:billing_modelprice_change", args=[override.id])
    assert client.get(override_url).status_code == 200
    assert client.post(override_url, {"model": "o-admin"}).status_code == 403
    client.force_login(member)
    # A price without an organisation (global) cannot be added by staff.
    response = client.post(
        reverse("admin:billing_modelprice_add"),
        {
            "provider": "gewe",
            "model": "send_text",
            "input_price_per_1k": "0",
            "output_price_per_1k": "0",
            "unit_price": "1",
            "currency": "CNY",
            "valid_from_0": "2025-01-01",
            "valid_from_1": "00:00:00",
        },
    )
    assert response.status_code == 200  # form redisplayed with the error
    assert not ModelPrice.objects.filter(model="send_text", provider="gewe", unit_price=1).exists()
    response = client.post(
        reverse("admin:billing_modelprice_add"),
        {
            "org": org.id,
            "provider": "gewe",
            "model": "send_text",
            "input_price_per_1k": "0",
            "output_price_per_1k": "0",
            "unit_price": "1",
            "currency": "CNY",
            "valid_from_0": "2025-01-01",
            "valid_from_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    assert ModelPrice.objects.get(org=org, model="send_text").unit_price == 1


def test_budget_admin_saves_through_the_service(
    client, org, other_org, staff_manager, member, outsider
):
    client.force_login(staff_manager)  # managers read budgets only
    assert client.get(reverse("admin:billing_budget_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_budget_add")).status_code == 403
    client.force_login(member)  # an admin of the organisation
    data = {
        "name": "Admin budget",
        "scope": "user",
        "user": outsider.id,
        "money_limit": "5",
        "currency": "CNY",
        "soft_thresholds": "[80]",
        "action": "block",
        "is_active": "on",
        "org": org.id,
    }
    response = client.post(reverse("admin:billing_budget_add"), data)
    assert response.status_code == 200  # outsider is not a member: not a valid choice
    assert not Budget.objects.filter(name="Admin budget").exists()
    data["user"] = member.id
    response = client.post(reverse("admin:billing_budget_add"), data)
    assert response.status_code == 302, response.content[:2000]
    budget = Budget.objects.get(name="Admin budget")
    assert budget.org == org and budget.soft_thresholds == [80]
    data["org"] = other_org.id
    data["name"] = "Sneaky"
    response = client.post(reverse("admin:billing_budget_add"), data)
    assert not Budget.objects.filter(name="Sneaky").exists()


def test_release_action(client, org, superuser):
    resv = services.reserve(
        org=org,
        provider="p",
        model="x",
        kind=Kind.CHAT,
        estimated_input_tokens=1,
        estimated_output_tokens=1,
        request_id="r",
    )
    client.force_login(superuser)
    response = client.post(
        reverse("admin:billing_reservation_changelist"),
        {"action": "release_selected", "_selected_action": [resv.id]},
    )
    assert response.status_code == 302
    resv.refresh_from_db()
    assert resv.status == Reservation.Status.RELEASED
