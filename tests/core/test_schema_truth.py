"""The schema tells the truth (issue 18): the drift schemathesis found, one test each."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api_client):
    return api_client.get("/api/schema/?format=json").json()


def test_every_operation_documents_its_error_answers(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation["responses"]
            for code in ("400", "401", "403", "404", "429"):
                assert code in responses, (method, path, code)
            if method != "get":
                assert "409" in responses, (method, path)
    assert "ErrorResponse" in schema["components"]["schemas"]


def test_times_of_day_are_described_as_what_the_api_answers(schema, api_client):
    quiet = schema["components"]["schemas"]["SopPlan"]["properties"]["quiet_hours_start"]
    text = str(quiet)
    assert "'format': 'time'" not in text
    assert "pattern" in text


def test_dry_run_is_documented_as_the_plain_list_it_answers(schema):
    dry_run = next(p for p in schema["paths"] if p.endswith("/dry-run/"))
    answer = schema["paths"][dry_run]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["type"] == "array"


def test_price_valid_from_in_1588_is_refused(api_client):
    body = {
        "provider": "openai_compat",
        "model": "m",
        "input_price_per_1k": "0.001",
        "output_price_per_1k": "0.002",
        "currency": "CNY",
        "valid_from": "1588-01-01T00:00:00Z",
    }
    response = api_client.post("/api/v1/billing/prices/", body, format="json")
    assert response.status_code == 400, response.content
    assert "valid_from" in response.json()["error"]["fields"]
    body["valid_from"] = "2026-01-01T00:00:00Z"
    assert api_client.post("/api/v1/billing/prices/", body, format="json").status_code == 201


def test_unmatched_api_path_answers_json_404(api_client):
    response = api_client.get("/api/v1/billing/budgets/0.5/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api_client.get("/definitely-not-a-page/").status_code == 404
