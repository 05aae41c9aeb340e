"""Operators and the SPA: CORS, request ids in responses and structured logs, API throttles."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config

import pytest
from django.conf import settings as django_settings

from apps.core import logcontext
from tests.conftest import client_for

SPA = "https://app.example.com"
EVIL = "https://evil.example.net"
CURRENT = "/api/v1/orgs/current/"


@pytest.fixture
def spa_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [SPA]
    return SPA


@pytest.mark.django_db
def test_cors_preflight_from_an_allowed_origin(client, spa_origin):
    response = client.options(
        "/api/v1/auth/login/",
        HTTP_ORIGIN=SPA,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, x-organization",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SPA
    allowed = response["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "x-organization" in allowed


@pytest.mark.django_db
def test_cors_preflight_from_a_refused_origin_gets_no_allow_header(client, spa_origin):
    response = client.options(
        "/api/v1/auth/login/",
        HTTP_ORIGIN=EVIL,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
def test_cors_is_off_by_default_and_only_on_the_api(client, settings):
    assert django_settings.CORS_ALLOWED_ORIGINS == [] or settings.CORS_ALLOWED_ORIGINS == []
    settings.CORS_ALLOWED_ORIGINS = []
    response = client.options(
        "/api/v1/auth/login/", HTTP_ORIGIN=SPA, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in response
    settings.CORS_ALLOWED_ORIGINS = [SPA]
    outside_api = client.get("/healthz", HTTP_ORIGIN=SPA)
    assert "Access-Control-Allow-Origin" not in outside_api


@pytest.mark.django_db
def test_actual_cross_origin_request_exposes_the_request_id(spa_origin, member, org):
    api = client_for(member, org)
    response = api.get("/api/v1/orgs/", HTTP_ORIGIN=SPA)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SPA
    assert "x-request-id" in response["Access-Control-Expose-Headers"].lower()


def test_request_id_is_generated_and_returned(client):
    response = client.get("/healthz")
    rid = response["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0


def test_a_sane_request_id_is_kept_and_a_hostile_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234.abc")["X-Request-ID"] == "lb-1234.abc"
    hostile = client.get("/healthz", HTTP_X_REQUEST_ID="x" * 65 + "\n{}")["X-Request-ID"]
    assert hostile != "x" * 65 and len(hostile) == 32


@pytest.fixture
def json_log_stream():
    """The project's LOGGING with the JSON formatter, writing to a buffer."""
    stream = io.StringIO()
    config = copy.deepcopy(django_settings.LOGGING)
    config["handlers"]["console"]["formatter"] = "json"
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    logging.config.dictConfig(django_settings.LOGGING)


@pytest.mark.django_db
def test_a_json_log_line_carries_the_request_id_and_organisation(
    json_log_stream, member, org, monkeypatch
):
    from apps.orgs.api import views as org_views

    original = org_views.CurrentOrganizationView.get

    def get_and_log(self, request, *args, **kwargs):
        logging.getLogger("apps.orgs").warning("listing organisations")
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(org_views.CurrentOrganizationView, "get", get_and_log)
    response = client_for(member, org).get("/api/v1/orgs/current/", HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 200
    lines = [json.loads(line) for line in json_log_stream.getvalue().splitlines() if line]
    ours = [line for line in lines if line.get("message") == "listing organisations"]
    assert len(ours) == 1
    assert ours[0]["request_id"] == "req-42"
    assert ours[0]["org_id"] == org.id
    assert ours[0]["user_id"] == member.id
    assert ours[0]["level"] == "WARNING" and ours[0]["logger"] == "apps.orgs"


def test_the_context_is_reset_between_requests_and_tasks():
    token = logcontext.reset(request_id="a", org_id=1)
    logcontext.bind(conversation_id=7, account_id=None)
    assert logcontext.current() == {"request_id": "a", "org_id": 1, "conversation_id": 7}
    logcontext.restore(token)
    assert logcontext.current() == {}
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    logcontext.ContextFilter().filter(record)
    assert record.request_id == "-" and record.task_id == "-"


def test_celery_tasks_log_their_task_id_and_the_sending_request_id():
    from celery import signals

    logcontext.connect_celery_signals()
    token = logcontext.reset(request_id="req-7")
    headers: dict = {}
    signals.before_task_publish.send(sender="t", headers=headers, body=None)
    assert headers["request_id"] == "req-7"
    logcontext.restore(token)

    class _Request:
        headers = {"request_id": "req-7"}

    class _Task:
        request = _Request()

    signals.task_prerun.send(sender=None, task_id="task-1", task=_Task())
    assert logcontext.current() == {"task_id": "task-1", "request_id": "req-7"}
    signals.task_postrun.send(sender=None, task_id="task-1", task=_Task())
    assert logcontext.current() == {}


@pytest.mark.django_db
def test_user_throttle_answers_429_with_retry_after_in_the_error_shape(settings, member, org):
    settings.API_THROTTLE_USER_RATE = "3/min"
    api = client_for(member, org)
    codes = [api.get("/api/v1/orgs/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/orgs/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "throttled"


@pytest.mark.django_db
def test_org_throttle_counts_every_member_of_the_organisation(settings, org, make_member):
    settings.API_THROTTLE_ORG_RATE = "4/min"
    first = client_for(make_member("agent"), org)
    second = client_for(make_member("agent"), org)
    codes = [client.get(CURRENT).status_code for client in (first, second) * 2]
    assert codes == [200, 200, 200, 200]
    assert second.get(CURRENT).status_code == 429


@pytest.mark.django_db
def test_org_throttle_does_not_touch_another_organisation(settings, org, other_org, make_member):
    settings.API_THROTTLE_ORG_RATE = "2/min"
    busy = client_for(make_member("agent"), org)
    for _ in range(2):
        busy.get(CURRENT)
    assert busy.get(CURRENT).status_code == 429
    calm = client_for(make_member("agent", organization=other_org), other_org)
    assert calm.get(CURRENT).status_code == 200


@pytest.mark.django_db
def test_anonymous_throttle_by_address(settings, anon_client):
    settings.API_THROTTLE_ANON_RATE = "2/min"
    codes = [
        anon_client.post(
            "/api/v1/auth/login/", {"email": "x@example.com", "password": "nope"}
        ).status_code
        for _ in range(3)
    ]
    assert codes[-1] == 429
