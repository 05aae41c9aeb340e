import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine

from apps.billing import services
from apps.billing.models import Budget, BudgetAlert, CostLedger, Kind
from apps.orgs.models import Role
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 4, 15, 4, 0, tzinfo=dt.UTC)  # 12:00 in Shanghai, mid-April


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def prices(db):
    ModelPriceFactory(model="m-chat")  # 0.008 / 0.024 per 1K
    ModelPriceFactory(
        provider="gewe",
        model="send_t",
        unit_price=Decimal("0.002"),
        input_price_per_1k=0,
        output_price_per_1k=0,
    )


def _chat(org, request_id, tokens_in=1000, tokens_out=500, **kwargs):
    resv = services.reserve(
        org=org,
        provider="fastgpt",
        model="m-chat",
        kind=Kind.CHAT,
        estimated_input_tokens=tokens_in,
        estimated_output_tokens=tokens_out,
        request_id=request_id,
        **kwargs,
    )
    return services.settle(reservation=resv, input_tokens=tokens_in, output_tokens=tokens_out)


# --- Roles and tenancy helpers --------------------------------------------------------------------
def test_budget_exceeded_renders_as_402_in_the_error_shape(org):
    from apps.core.api.exceptions import exception_handler

    budget = BudgetFactory(org=org)
    exc = services.BudgetExceeded(
        "over", budget=budget, metric="money", used=1, limit=1, requested=1, period="2025-04"
    )
    response = exception_handler(exc, {})
    assert response.status_code == 402
    assert response.data == {"error": {"code": "budget_exceeded", "message": "over"}}


# --- Prices ---------------------------------------------------------------------------------------
def test_prices_list_globals_and_own_but_not_other_orgs(org, other_org, make_member):
    ModelPriceFactory(model="g-1")
    mine = ModelPriceFactory(org=org, model="g-1", input_price_per_1k=Decimal("0.001"))
    theirs = ModelPriceFactory(org=other_org, model="secret")
    viewer = client_for(make_member(Role.VIEWER), org)
    response = viewer.get("/api/v1/billing/prices/", {"page_size": 200})
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert mine.id in ids and theirs.id not in ids
    scoped = viewer.get("/api/v1/billing/prices/", {"scope": "org"}).json()["results"]
    assert [row["id"] for row in scoped] == [mine.id]
    assert scoped[0]["input_price_per_1k"] == "0.001000" and scoped[0]["scope"] == "org"
    assert viewer.get(f"/api/v1/billing/prices/{theirs.id}/").status_code == 404


def test_price_writes_need_admin(org, api_client, make_member):
    payload = {
        "provider": "gewe",
        "model": "send_text",
        "unit_price": "0.0015",
        "currency": "CNY",
        "valid_from": "2025-01-01T00:00:00Z",
    }
    agent = client_for(make_member(Role.AGENT), org)
    assert agent.post("/api/v1/billing/prices/", payload).status_code == 403
    response = api_client.post("/api/v1/billing/prices/", payload)
    assert response.status_code == 201, response.json()
    assert response.json()["scope"] == "org"
    assert services.cost_for(org, "gewe", "send_text", units=2) == Decimal("0.003")
    price_id = response.json()["id"]
    response = api_client.patch(f"/api/v1/billing/prices/{price_id}/", {"unit_price": "0.01"})
    assert response.status_code == 200 and response.json()["unit_price"] == "0.010000"
    assert api_client.delete(f"/api/v1/billing/prices/{price_id}/").status_code == 204


def test_global_price_is_read_only_and_other_orgs_price_is_404(org, other_org, api_client):
    global_price = ModelPriceFactory(model="g-2")
    theirs = ModelPriceFactory(org=other_org, model="g-2")
    response = api_client.patch(f"/api/v1/billing/prices/{global_price.id}/", {"unit_price": "1"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert api_client.delete(f"/api/v1/billing/prices/{global_price.id}/").status_code == 403
    for method in ("get", "patch", "delete"):
        assert (
            getattr(api_client, method)(f"/api/v1/billing/prices/{theirs.id}/").status_code == 404
        )


def test_price_validation_errors_use_the_error_shape(api_client):
    response = api_client.post(
        "/api/v1/billing/prices/",
        {"provider": "p", "model": "m", "input_price_per_1k": "-1", "currency": "CNY"},
    )
    assert response.status_code == 400
    assert "input_price_per_1k" in response.json()["error"]["fields"]
    response = api_client.post(
        "/api/v1/billing/prices/", {"provider": "p", "model": "m", "currency": "C1"}
    )
    assert response.status_code == 400
    assert "currency" in response.json()["error"]["fields"]


# --- Ledger ---------------------------------------------------------------------------------------
def test_ledger_is_for_managers_and_scoped_to_the_org(org, other_org, prices, make_member):
    mine = _chat(org, "mine")
    theirs = _chat(other_org, "theirs")
    manager = client_for(make_member(Role.MANAGER), org)
    agent = client_for(make_member(Role.AGENT), org)
    assert agent.get("/api/v1/billing/ledger/").status_code == 403
    response = manager.get("/api/v1/billing/ledger/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["request_id"] for row in rows] == ["mine"]
    assert rows[0]["cost"] == "0.0200000000"  # 1000 × 0.008/1K + 500 × 0.024/1K
    assert manager.get(f"/api/v1/billing/ledger/{mine.id}/").status_code == 200
    assert manager.get(f"/api/v1/billing/ledger/{theirs.id}/").status_code == 404


def test_ledger_filters(org, prices, make_member):
    alice = make_member()
    _chat(org, "a", user=alice, wechat_account_id=5, conversation_id=9)
    _chat(org, "b")
    services.record_usage(
        org=org, provider="gewe", model="send_t", units=1, request_id="c", wechat_account_id=5
    )
    # 2025-04-14 23:30 Shanghai = 15:30 UTC on the 14th.
    with time_machine.travel(dt.datetime(2025, 4, 14, 15, 30, tzinfo=dt.UTC), tick=False):
        _chat(org, "yesterday")

    def ids(**params):
        response = client_for_member.get("/api/v1/billing/ledger/", params)
        assert response.status_code == 200, response.json()
        return sorted(row["request_id"] for row in response.json()["results"])

    client_for_member = client_for(make_member(Role.MANAGER), org)
    assert ids(kind="platform") == ["c"]
    assert ids(user=alice.id) == ["a"]
    assert ids(wechat_account_id=5) == ["a", "c"]
    assert ids(conversation_id=9) == ["a"]
    assert ids(model="m-chat") == ["a", "b", "yesterday"]
    assert ids(date_from="2025-04-15") == ["a", "b", "c"]
    assert ids(date_to="2025-04-14") == ["yesterday"]
    assert ids(created_before="2025-04-15T00:00:00Z") == ["yesterday"]
    bad = client_for_member.get("/api/v1/billing/ledger/", {"kind": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"


def test_ledger_cursor_pagination_with_constant_queries(
    org, prices, api_client, django_assert_num_queries
):
    for i in range(5):
        _chat(org, f"r{i}")
    with django_assert_num_queries(2):  # membership, one page (users joined; no count query)
        first = api_client.get("/api/v1/billing/ledger/", {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = api_client.get(first["next"]).json()
    third = api_client.get(second["next"]).json()
    seen = [r["request_id"] for page in (first, second, third) for r in page["results"]]
    assert sorted(seen) == [f"r{i}" for i in range(5)] and third["next"] is None


def test_ledger_csv_export(org, other_org, prices, api_client):
    _chat(org, "one")
    services.record_usage(org=org, provider="gewe", model="send_t", units=3, request_id="two")
    _chat(other_org, "other")
    for url in ("/api/v1/billing/ledger/?format=csv", "/api/v1/billing/ledger/export/"):
        response = api_client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "attachment" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert {r["request_id"]: r["cost"] for r in rows} == {
            "one": "0.0200000000",
            "two": "0.0060000000",
        }
        assert rows[0]["created_at"].endswith("+08:00")
    filtered = api_client.get("/api/v1/billing/ledger/export/", {"kind": "platform"})
    body = b"".join(filtered.streaming_content).decode()
    assert "two" in body and "one" not in body


def test_ledger_csv_export_needs_manager(org, make_member):
    agent = client_for(make_member(Role.AGENT), org)
    assert agent.get("/api/v1/billing/ledger/export/").status_code == 403
    assert agent.get("/api/v1/billing/ledger/?format=csv").status_code == 403


# --- Usage ----------------------------------------------------------------------------------------
def test_usage_totals_series_and_budget_status(org, other_org, prices, api_client, member):
    BudgetFactory(org=org, money_limit=Decimal("1"), token_limit=None)
    _chat(org, "u1", user=member, wechat_account_id=3)
    _chat(org, "u2", tokens_in=2000, tokens_out=0)
    services.record_usage(
        org=org, provider="gewe", model="send_t", units=5, request_id="u3", wechat_account_id=3
    )
    _chat(other_org, "x", tokens_in=100000)
    with time_machine.travel(dt.datetime(2025, 3, 20, tzinfo=dt.UTC), tick=False):
        _chat(org, "march")

    response = api_client.get("/api/v1/billing/usage/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["start"], body["end"], body["timezone"]) == (
        "2025-04-01",
        "2025-04-30",
        "Asia/Shanghai",
    )
    # 0.02 + 0.016 + 0.01 (5 × 0.002)
    assert body["totals"] == [
        {
            "currency": "CNY",
            "calls": 3,
            "input_tokens": 3000,
            "output_tokens": 500,
            "units": 5,
            "cost": "0.0460000000",
        }
    ]
    assert [(d["date"], d["cost"]) for d in body["by_day"]] == [("2025-04-15", "0.0460000000")]
    assert {(m["model"], m["cost"]) for m in body["by_model"]} == {
        ("m-chat", "0.0360000000"),
        ("send_t", "0.0100000000"),
    }
    by_user = {u["user_id"]: u["cost"] for u in body["by_user"]}
    assert by_user == {member.id: "0.0200000000", None: "0.0260000000"}
    assert [(a["wechat_account_id"], a["cost"]) for a in body["by_account"]] == [
        (3, "0.0300000000")
    ]
    [budget] = body["budgets"]
    assert budget["period"] == "2025-04" and budget["money_used"] == "0.0460000000"
    assert budget["money_percent"] == "4.60" and budget["blocked"] is False
    # 14.5 of 30 days elapsed (noon on the 15th in Shanghai): 0.046 / (14.5/30)
    assert Decimal(budget["projected_money"]) == Decimal("0.0952")

    march = api_client.get("/api/v1/billing/usage/", {"start": "2025-03-01", "end": "2025-03-31"})
    assert march.json()["totals"][0]["calls"] == 1


def test_usage_filters_and_validation(org, prices, api_client, member, make_member):
    _chat(org, "a", user=member)
    _chat(org, "b")
    response = api_client.get("/api/v1/billing/usage/", {"user": member.id})
    assert response.json()["totals"][0]["calls"] == 1
    response = api_client.get("/api/v1/billing/usage/", {"kind": "platform"})
    assert response.json()["totals"] == []
    bad = api_client.get("/api/v1/billing/usage/", {"start": "2025-04-10", "end": "2025-04-01"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    too_long = api_client.get(
        "/api/v1/billing/usage/", {"start": "2024-01-01", "end": "2025-04-01"}
    )
    assert too_long.status_code == 400
    agent = client_for(make_member(Role.AGENT), org)
    assert agent.get("/api/v1/billing/usage/").status_code == 403


def test_usage_never_shows_another_orgs_data(org, other_org, prices, outsider):
    _chat(org, "mine")
    BudgetFactory(org=org)
    response = client_for(outsider, other_org).get("/api/v1/billing/usage/")
    assert response.json()["totals"] == [] and response.json()["budgets"] == []
    # Asking for org through the header as a non-member is 404.
    assert client_for(outsider, org).get("/api/v1/billing/usage/").status_code == 404


# --- Budgets --------------------------------------------------------------------------------------
def test_budget_crud_by_admin(org, api_client, member):
    response = api_client.post(
        "/api/v1/billing/budgets/",
        {"name": "Monthly", "scope": "org", "money_limit": "500.00", "action": "block"},
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["soft_thresholds"] == [80, 95] and body["currency"] == "CNY"
    budget_id = body["id"]
    response = api_client.patch(
        f"/api/v1/billing/budgets/{budget_id}/",
        {"token_limit": 100000, "soft_thresholds": [50, 90]},
    )
    assert response.status_code == 200 and response.json()["soft_thresholds"] == [50, 90]
    response = api_client.post(
        "/api/v1/billing/budgets/", {"scope": "user", "user": member.id, "token_limit": 1000}
    )
    assert response.status_code == 201, response.json()
    assert api_client.get("/api/v1/billing/budgets/").json()["count"] == 2
    assert api_client.delete(f"/api/v1/billing/budgets/{budget_id}/").status_code == 204
    assert not Budget.objects.filter(id=budget_id).exists()


def test_budget_validation_errors(org, api_client, outsider):
    response = api_client.post("/api/v1/billing/budgets/", {"scope": "org"})
    assert response.status_code == 400
    assert "money_limit" in response.json()["error"]["fields"]
    response = api_client.post(
        "/api/v1/billing/budgets/", {"scope": "user", "user": outsider.id, "token_limit": 5}
    )
    assert response.status_code == 400 and "user" in response.json()["error"]["fields"]
    response = api_client.post("/api/v1/billing/budgets/", {"scope": "account", "token_limit": 5})
    assert "wechat_account_id" in response.json()["error"]["fields"]
    response = api_client.post(
        "/api/v1/billing/budgets/", {"token_limit": 5, "soft_thresholds": [100]}
    )
    assert response.status_code == 400
    BudgetFactory(org=org)
    duplicate = api_client.post("/api/v1/billing/budgets/", {"scope": "org", "token_limit": 5})
    assert duplicate.status_code == 400


def test_budget_roles(org, make_member):
    budget = BudgetFactory(org=org)
    manager = client_for(make_member(Role.MANAGER), org)
    agent = client_for(make_member(Role.AGENT), org)
    assert manager.get("/api/v1/billing/budgets/").status_code == 200
    assert (
        manager.patch(f"/api/v1/billing/budgets/{budget.id}/", {"money_limit": "1"}).status_code
        == 403
    )
    assert manager.post("/api/v1/billing/budgets/", {"token_limit": 1}).status_code == 403
    assert agent.get("/api/v1/billing/budgets/").status_code == 403
    owner = client_for(make_member(Role.OWNER), org)
    assert owner.delete(f"/api/v1/billing/budgets/{budget.id}/").status_code == 204


def test_other_orgs_budget_is_404(org, other_org, api_client):
    theirs = BudgetFactory(org=other_org)
    url = f"/api/v1/billing/budgets/{theirs.id}/"
    assert api_client.get(url).status_code == 404
    assert api_client.patch(url, {"money_limit": "1"}).status_code == 404
    assert api_client.delete(url).status_code == 404
    assert Budget.objects.filter(id=theirs.id).exists()
    assert api_client.get("/api/v1/billing/budgets/").json()["count"] == 0


def test_blocking_budget_refuses_then_alert_is_listed(org, other_org, prices, api_client):
    budget = BudgetFactory(org=org, money_limit=Decimal("0.03"), soft_thresholds=[50])
    _chat(org, "first")  # 0.02: 66 %
    with pytest.raises(services.BudgetExceeded):
        _chat(org, "second")
    alerts = api_client.get("/api/v1/billing/alerts/").json()["results"]
    assert sorted((a["threshold"], a["blocked"]) for a in alerts) == [(50, False), (100, True)]
    assert all(a["budget"] == budget.id for a in alerts)
    status = api_client.get("/api/v1/billing/usage/").json()["budgets"][0]
    assert status["money_percent"] == "66.67" and status["blocked"] is False
    other_alert = BudgetAlert.objects.create(
        org=other_org,
        budget=BudgetFactory(org=other_org),
        period="2025-04",
        threshold=80,
        metric="money",
        used=1,
        limit=1,
        percent=80,
    )
    assert api_client.get(f"/api/v1/billing/alerts/{other_alert.id}/").status_code == 404
    assert CostLedger.objects.filter(org=org).count() == 1
