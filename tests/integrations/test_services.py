"""Services of the integrations app: call log, client factories, live tests, AI app cache."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.integrations import selectors, services
from apps.integrations.clients.ai import ChatResult
from apps.integrations.clients.base import CallRecord
from apps.integrations.clients.errors import AuthError
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from tests.fixtures_simulators import SIM_GEWE_TOKEN, SIM_OPENAI_KEY
from tests.integrations.factories import (
    AIAppFactory,
    IntegrationCallFactory,
    PlatformConnectionFactory,
)

pytestmark = pytest.mark.django_db

NO_SLEEP = {"sleep": lambda seconds: None}


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch):
    monkeypatch.setitem(services.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


@pytest.fixture
def sims(simulators_clean):
    return simulators_clean


@pytest.fixture
def gewe_connection(org, sims):
    return PlatformConnectionFactory(
        org=org, base_url=sims.urls["gewe"], token=SIM_GEWE_TOKEN, capabilities=["moments"]
    )


@pytest.fixture
def openai_app(org, sims):
    return AIAppFactory(org=org, base_url=sims.urls["openai"], api_key=SIM_OPENAI_KEY)


# -- call log ------------------------------------------------------------------------------


def test_ai_call_writes_one_row_per_attempt_after_a_500(org, sims, openai_app):
    sims["openai"].add_fault("error", status=500, times=1)
    client = services.ai_client_for(openai_app, **NO_SLEEP)
    result = services.ai_chat(ai_app=openai_app, messages="hello there", client=client)

    assert result.text == "echo: hello there"
    rows = list(IntegrationCall.objects.filter(org=org).order_by("attempt"))
    assert [(r.attempt, r.ok, r.http_status) for r in rows] == [(1, False, 500), (2, True, 200)]
    assert rows[0].error_class == "Unavailable"
    assert all(r.service == "openai" and r.operation for r in rows)
    assert all(r.ai_app_id == openai_app.id and r.connection_id is None for r in rows)
    assert all(r.latency_ms >= 0 for r in rows)


def test_wechat_call_rows_carry_connection_and_account(org, sims, gewe_connection):
    sims["gewe"].add_fault("error", path="/login/deviceList", status=500, times=1)
    client = services.wechat_client_for(gewe_connection, wechat_account_id=42, **NO_SLEEP)
    assert isinstance(client.list_devices(), list)

    rows = list(IntegrationCall.objects.filter(org=org).order_by("id"))
    assert rows[0].ok is False and rows[0].http_status == 500
    assert all(r.ok for r in rows[1:])
    assert {r.connection_id for r in rows} == {gewe_connection.id}
    assert {r.wechat_account_id for r in rows} == {42}
    assert {r.service for r in rows} == {"gewe"}


def test_call_rows_hold_no_secrets(org, sims, openai_app):
    services.ai_chat(ai_app=openai_app, messages="my secret question")
    row = IntegrationCall.objects.get(org=org)
    values = " ".join(str(getattr(row, f.attname)) for f in IntegrationCall._meta.concrete_fields)
    assert SIM_OPENAI_KEY not in values
    assert "secret question" not in values


def test_buffered_recorder_bulk_writes_on_flush(org):
    recorder = services.call_log_recorder(org_id=org.id, buffered=True)
    for attempt in (1, 2, 3):
        recorder(CallRecord("gewe", "send_text", 200, True, None, 12, "req-1", attempt))
    assert IntegrationCall.objects.count() == 0
    assert recorder.flush() == 3
    assert IntegrationCall.objects.filter(org=org, request_id="req-1").count() == 3
    assert recorder.flush() == 0


def test_prune_deletes_only_old_rows(org):
    IntegrationCallFactory(org=org, at=timezone.now() - timedelta(days=40))
    fresh = IntegrationCallFactory(org=org)
    assert services.integration_call_prune(older_than_days=30) == 1
    assert list(IntegrationCall.objects.values_list("id", flat=True)) == [fresh.id]


def test_prune_task_is_idempotent(org):
    from apps.integrations.tasks import integration_call_prune

    IntegrationCallFactory(org=org, at=timezone.now() - timedelta(days=400))
    assert integration_call_prune.delay().get() == 1
    assert integration_call_prune.delay().get() == 0


# -- client factories ----------------------------------------------------------------------


def test_ai_client_uses_the_org_limiter(settings, org, openai_app):
    settings.AI_MAX_IN_FLIGHT_PER_ORG = 3
    client = services.ai_client_for(openai_app)
    assert client.limiter.limit == 3
    assert str(org.id) in client.limiter.key
    other = services.ai_client_for(AIAppFactory())
    assert other.limiter.key != client.limiter.key


def test_ai_chat_holds_a_slot_and_releases_it(org, sims, openai_app):
    client = services.ai_client_for(openai_app)
    stream = services.ai_chat_stream(ai_app=openai_app, messages="stream please", client=client)
    first = next(stream)
    assert isinstance(first, str)
    assert client.limiter.in_flight() == 1
    items = [first, *stream]
    assert isinstance(items[-1], ChatResult)
    assert items[-1].text == "echo: stream please"
    assert client.limiter.in_flight() == 0


def test_system_prompt_is_sent_first(org, sims, openai_app):
    openai_app.system_prompt = "Be brief."
    services.ai_chat(ai_app=openai_app, messages="hi")
    body = sims["openai"].requests_to("/chat/completions")[-1].json
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["model"] == openai_app.model


def test_disabled_ai_app_refuses_to_chat(openai_app):
    openai_app.enabled = False
    with pytest.raises(ApplicationError):
        services.ai_chat(ai_app=openai_app, messages="hi")


def test_hosted_flag_follows_moments_capability(gewe_connection):
    assert services.wechat_client_for(gewe_connection).supports_moments is True
    gewe_connection.capabilities = []
    assert services.wechat_client_for(gewe_connection).supports_moments is False


# -- connections ---------------------------------------------------------------------------


def test_connection_create_strips_slash_and_audits(org, owner):
    conn = services.connection_create(
        org=org,
        actor=owner,
        provider="gewe",
        name="Main",
        base_url="http://127.0.0.1:2531/v2/api/",
        token="tok-123456789",
    )
    assert conn.base_url == "http://127.0.0.1:2531/v2/api"
    event = AuditEvent.objects.get(org=org, action=AuditEvent.Action.CREDENTIALS_CHANGED)
    assert event.target_id == str(conn.id)
    assert event.changes == {"fields": ["token"], "operation": "created"}
    assert "tok-123456789" not in str(event.changes)


def test_connection_update_keeps_secret_when_blank_and_audits_only_secret_changes(org, owner):
    conn = PlatformConnectionFactory(org=org, token="old-token-xyz")
    services.connection_update(
        org=org, connection_id=conn.id, actor=owner, name="Renamed", token=""
    )
    conn.refresh_from_db()
    assert (conn.name, conn.token) == ("Renamed", "old-token-xyz")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIALS_CHANGED).exists()

    services.connection_update(org=org, connection_id=conn.id, actor=owner, token="new-token-abc")
    conn.refresh_from_db()
    assert conn.token == "new-token-abc"
    assert AuditEvent.objects.get(action=AuditEvent.Action.CREDENTIALS_CHANGED).changes[
        "fields"
    ] == ["token"]


def test_connection_services_refuse_other_org(org, other_org):
    conn = PlatformConnectionFactory(org=other_org)
    with pytest.raises(NotFoundError):
        services.connection_update(org=org, connection_id=conn.id, name="x")
    with pytest.raises(NotFoundError):
        services.connection_rotate_secret(org=org, connection_id=conn.id)
    with pytest.raises(NotFoundError):
        services.connection_test(org=org, connection_id=conn.id)
    with pytest.raises(NotFoundError):
        services.connection_delete(org=org, connection_id=conn.id)


def test_duplicate_name_is_a_clear_error(org):
    PlatformConnectionFactory(org=org, name="Main")
    with pytest.raises(ApplicationError) as excinfo:
        services.connection_create(
            org=org, provider="gewe", name="Main", base_url="http://127.0.0.1:1/v2/api"
        )
    assert "name" in excinfo.value.fields


def test_rotate_secret_changes_webhook_url(org, owner):
    conn = PlatformConnectionFactory(org=org)
    old_url = conn.webhook_url
    rotated = services.connection_rotate_secret(org=org, connection_id=conn.id, actor=owner)
    assert rotated.webhook_url != old_url
    assert (
        AuditEvent.objects.get(action=AuditEvent.Action.CREDENTIALS_CHANGED).changes["operation"]
        == "rotated"
    )


def test_connection_test_against_simulator(org, sims, gewe_connection):
    result = services.connection_test(org=org, connection_id=gewe_connection.id)
    assert result.ok is True
    assert result.latency_ms >= 0
    gewe_connection.refresh_from_db()
    assert gewe_connection.status == PlatformConnection.Status.OK
    assert gewe_connection.last_checked_at is not None
    assert IntegrationCall.objects.filter(connection=gewe_connection, ok=True).exists()


def test_connection_test_with_a_bad_token_reports_auth_error(org, sims):
    conn = PlatformConnectionFactory(org=org, base_url=sims.urls["gewe"], token="wrong-token")
    result = services.connection_test(org=org, connection_id=conn.id)
    assert result.ok is False
    assert result.error_class == AuthError.__name__
    conn.refresh_from_db()
    assert conn.status == PlatformConnection.Status.ERROR
    assert conn.status_detail


def test_connection_test_of_unreachable_platform(org):
    conn = PlatformConnectionFactory(org=org, base_url="http://127.0.0.1:9/v2/api")
    result = services.connection_test(org=org, connection_id=conn.id)
    assert result.ok is False
    assert result.error_class in ("Unavailable", "RequestTimeout")


def test_set_callback_posts_the_webhook_url(org, sims, gewe_connection):
    services.connection_set_callback(org=org, connection_id=gewe_connection.id)
    body = sims["gewe"].requests_to("/tools/setCallback")[-1].json
    assert body["callbackUrl"] == gewe_connection.webhook_url


# -- AI apps -------------------------------------------------------------------------------


def test_only_one_default_per_purpose(org):
    first = services.ai_app_create(
        org=org, provider="dify", name="A", base_url="http://localhost/v1", is_default=True
    )
    second = services.ai_app_create(
        org=org, provider="dify", name="B", base_url="http://localhost/v1", is_default=True
    )
    first.refresh_from_db()
    assert first.is_default is False and second.is_default is True
    services.ai_app_update(org=org, ai_app_id=first.id, is_default=True)
    second.refresh_from_db()
    assert second.is_default is False


def test_ai_app_update_keeps_key_when_blank(org, owner):
    app = AIAppFactory(org=org, api_key="sk-keep-this-1234")
    services.ai_app_update(org=org, ai_app_id=app.id, actor=owner, api_key="", model="qwen-max")
    app.refresh_from_db()
    assert (app.api_key, app.model) == ("sk-keep-this-1234", "qwen-max")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIALS_CHANGED).exists()


@pytest.mark.parametrize("streaming", [False, True])
def test_ai_app_test_runs_one_turn(org, sims, openai_app, streaming):
    openai_app.streaming = streaming
    openai_app.save()
    result = services.ai_app_test(org=org, ai_app_id=openai_app.id, prompt="ping")
    assert result.ok is True
    assert result.text == "echo: ping"
    assert result.input_tokens and result.output_tokens
    openai_app.refresh_from_db()
    assert openai_app.last_check_ok is True
    assert openai_app.last_latency_ms is not None


def test_ai_app_test_with_a_bad_key(org, sims):
    app = AIAppFactory(org=org, base_url=sims.urls["openai"], api_key="sk-wrong")
    result = services.ai_app_test(org=org, ai_app_id=app.id)
    assert result.ok is False
    assert result.error_class == "AuthError"
    app.refresh_from_db()
    assert app.last_check_ok is False


def test_integrations_sync_checks_everything_active(org, sims, gewe_connection, openai_app):
    disabled = PlatformConnectionFactory(org=org, status=PlatformConnection.Status.DISABLED)
    result = services.integrations_sync(org=org)
    assert set(result.connections) == {gewe_connection.id}
    assert result.connections[gewe_connection.id].ok
    assert result.ai_apps[openai_app.id].ok
    disabled.refresh_from_db()
    assert disabled.last_checked_at is None


# -- AI app cache --------------------------------------------------------------------------


def test_ai_app_get_is_cached(org, django_assert_num_queries):
    app = AIAppFactory(org=org)
    assert selectors.ai_app_get(org=org, ai_app_id=app.id).api_key == app.api_key
    with django_assert_num_queries(0):
        cached = selectors.ai_app_get(org=org, ai_app_id=app.id)
    assert (cached.id, cached.name, cached.api_key) == (app.id, app.name, app.api_key)


def test_ai_app_cache_never_holds_the_plaintext_key(org):
    app = AIAppFactory(org=org, api_key="sk-never-in-redis-9876")
    selectors.ai_app_get(org=org, ai_app_id=app.id)
    raw = cache.get(f"integrations:aiapp:{org.id}:{app.id}")
    assert raw["api_key"] and "sk-never-in-redis-9876" not in str(raw)


def test_ai_app_cache_is_invalidated_on_save_and_delete(org):
    app = AIAppFactory(org=org, model="qwen-plus")
    selectors.ai_app_get(org=org, ai_app_id=app.id)
    services.ai_app_update(org=org, ai_app_id=app.id, model="qwen-max")
    assert selectors.ai_app_get(org=org, ai_app_id=app.id).model == "qwen-max"
    services.ai_app_delete(org=org, ai_app_id=app.id)
    assert selectors.ai_app_get(org=org, ai_app_id=app.id) is None


def test_ai_app_get_is_org_scoped(org, other_org):
    app = AIAppFactory(org=other_org)
    assert selectors.ai_app_get(org=org, ai_app_id=app.id) is None
    assert selectors.ai_app_get(org=other_org, ai_app_id=app.id).id == app.id


def test_ai_app_default_follows_changes(org):
    assert selectors.ai_app_default(org=org, purpose="reply") is None  # cached miss
    first = services.ai_app_create(
        org=org, provider="dify", name="A", base_url="http://localhost/v1", is_default=True
    )
    assert selectors.ai_app_default(org=org, purpose="reply").id == first.id
    second = services.ai_app_create(
        org=org, provider="dify", name="B", base_url="http://localhost/v1", is_default=True
    )
    assert selectors.ai_app_default(org=org, purpose="reply").id == second.id
    services.ai_app_update(org=org, ai_app_id=second.id, enabled=False)
    assert selectors.ai_app_default(org=org, purpose="reply") is None
    assert selectors.ai_app_default(org=org, purpose=AIApp.Purpose.INTENT) is None


# -- the other providers -------------------------------------------------------------------


def test_ecloud_connection_test_against_simulator(org, sims):
    from tests.fixtures_simulators import SIM_ECLOUD_AUTHORIZATION

    conn = PlatformConnectionFactory(
        org=org, provider="ecloud", base_url=sims.urls["ecloud"], token=SIM_ECLOUD_AUTHORIZATION
    )
    result = services.connection_test(org=org, connection_id=conn.id)
    assert result.ok, result
    assert IntegrationCall.objects.filter(connection=conn, service="ecloud", ok=True).exists()

    bad = PlatformConnectionFactory(
        org=org, provider="ecloud", base_url=sims.urls["ecloud"], token="wrong"
    )
    assert services.connection_test(org=org, connection_id=bad.id).ok is False


@pytest.mark.parametrize(
    "provider, url_name, key_name",
    [
        ("fastgpt", "fastgpt", "SIM_FASTGPT_KEY"),
        ("dify", "dify", "SIM_DIFY_KEY"),
        ("openai", "dashscope", "SIM_DASHSCOPE_KEY"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_ai_app_test_for_every_provider(org, sims, provider, url_name, key_name, streaming):
    from tests import fixtures_simulators

    app = AIAppFactory(
        org=org,
        provider=provider,
        base_url=sims.urls[url_name],
        api_key=getattr(fixtures_simulators, key_name),
        model="qwen-plus" if provider == "openai" else "",
        streaming=streaming,
        # DashScope is detected from its host name; the simulator runs on 127.0.0.1.
        extra={"flavor": "dashscope"} if url_name == "dashscope" else {},
    )
    result = services.ai_app_test(org=org, ai_app_id=app.id, prompt="hello")
    assert result.ok, result
    assert "hello" in result.text
    expected_service = "dashscope" if url_name == "dashscope" else provider
    assert IntegrationCall.objects.filter(ai_app=app, service=expected_service, ok=True).exists()


def test_in_flight_limit_is_per_org(settings, org, other_org, sims, openai_app):
    from apps.integrations.clients.errors import ConcurrencyTimeout

    settings.AI_MAX_IN_FLIGHT_PER_ORG = 1
    settings.AI_IN_FLIGHT_WAIT_SECONDS = 0.1
    held = services.ai_chat_stream(ai_app=openai_app, messages="hold the slot")
    next(held)  # the stream holds the organisation's only slot
    with pytest.raises(ConcurrencyTimeout):
        services.ai_chat(ai_app=openai_app, messages="second")
    theirs = AIAppFactory(org=other_org, base_url=sims.urls["openai"], api_key=SIM_OPENAI_KEY)
    assert services.ai_chat(ai_app=theirs, messages="other org").text == "echo: other org"
    list(held)
    assert services.ai_chat(ai_app=openai_app, messages="after").text == "echo: after"


def test_connection_test_task_twice_and_cross_org(org, other_org, sims, gewe_connection):
    from apps.integrations.tasks import connection_test

    assert connection_test.delay(org_id=org.id, connection_id=gewe_connection.id).get() is True
    assert connection_test.delay(org_id=org.id, connection_id=gewe_connection.id).get() is True
    # The wrong organisation (or a deleted row) is a no-op.
    assert (
        connection_test.delay(org_id=other_org.id, connection_id=gewe_connection.id).get() is None
    )
    assert connection_test.delay(org_id=org.id, connection_id=10**9).get() is None


def test_webhook_secret_lookup(org, other_org):
    conn = PlatformConnectionFactory(org=other_org)
    found = selectors.connection_get_by_webhook_secret_all_orgs(
        provider="gewe", secret=conn.webhook_secret
    )
    assert found == conn
    assert (
        selectors.connection_get_by_webhook_secret_all_orgs(
            provider="ecloud", secret=conn.webhook_secret
        )
        is None
    )
    assert selectors.connection_get_by_webhook_secret_all_orgs(provider="gewe", secret="") is None
    conn.status = PlatformConnection.Status.DISABLED
    conn.save()
    assert (
        selectors.connection_get_by_webhook_secret_all_orgs(
            provider="gewe", secret=conn.webhook_secret
        )
        is None
    )
