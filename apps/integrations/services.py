"""Writes of the integrations app, and the factories that build logged provider clients.

Other apps call:

- ``wechat_client_for(connection, wechat_account_id=...)``: a GeWe / E云管家 client whose every
  attempt is written to the call log.
- ``ai_client_for(ai_app)``: an AI chat client (call log + the organisation's in-flight limiter).
- ``ai_chat(ai_app=..., messages=...)`` / ``ai_chat_stream(...)``: one AI turn with the app's
  system prompt applied, logged and limited.

Call log and transactions: a ``CallLogRecorder`` writes its ``IntegrationCall`` row as soon as
the attempt ends, on the default connection. Provider calls must therefore not run inside an
``atomic`` block (holding a transaction open across a network call is wrong anyway): then every
row is committed at once (autocommit) and survives whatever the caller does next. A call made
inside an atomic block that later rolls back loses its rows together with the rest of the work;
we accept that rather than open a second database connection per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import AuditEvent
from apps.accounts.services import audit_record
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.core.secrets import redact
from apps.integrations.clients.ai import AIChatClient, ChatResult
from apps.integrations.clients.base import CallRecord
from apps.integrations.clients.errors import AuthError, IntegrationError
from apps.integrations.clients.wechat import WeChatPlatformClient
from apps.integrations.models import (
    AIApp,
    IntegrationCall,
    PlatformConnection,
    new_webhook_secret,
)

logger = logging.getLogger(__name__)

UNSET: Any = object()  # "argument not given" for partial updates (None/"" are real values)

# Extra keyword arguments for every client the factories build (tests set ``sleep`` here so
# retries do not really wait).
CLIENT_DEFAULTS: dict[str, Any] = {}


# -- call log ------------------------------------------------------------------------------


class CallLogRecorder:
    """A client ``recorder`` writing one ``IntegrationCall`` row per attempt.

    ``buffered=True`` keeps rows in memory until ``flush()`` (one ``bulk_create``), for batch
    jobs that make many calls; unbuffered (the default) writes each row at once.
    """

    def __init__(
        self,
        *,
        org_id: int,
        connection_id: int | None = None,
        ai_app_id: int | None = None,
        wechat_account_id: int | None = None,
        buffered: bool = False,
    ) -> None:
        self.org_id = org_id
        self.connection_id = connection_id
        self.ai_app_id = ai_app_id
        self.wechat_account_id = wechat_account_id
        self.buffered = buffered
        self.pending: list[IntegrationCall] = []

    def row(self, record: CallRecord) -> IntegrationCall:
        return IntegrationCall(
            org_id=self.org_id,
            service=record.service[:16],
            operation=record.operation[:64],
            http_status=record.http_status,
            ok=record.ok,
            error_class=(record.error_class or "")[:64],
            latency_ms=max(0, int(record.latency_ms)),
            request_id=(record.request_id or "")[:128],
            attempt=record.attempt,
            connection_id=self.connection_id,
            ai_app_id=self.ai_app_id,
            wechat_account_id=self.wechat_account_id,
            at=timezone.now(),
        )

    def __call__(self, record: CallRecord) -> None:
        row = self.row(record)
        if self.buffered:
            self.pending.append(row)
        else:
            row.save(force_insert=True)

    def flush(self) -> int:
        rows, self.pending = self.pending, []
        if rows:
            IntegrationCall.objects.bulk_create(rows)
        return len(rows)


def call_log_recorder(
    *,
    org_id: int,
    connection_id: int | None = None,
    ai_app_id: int | None = None,
    wechat_account_id: int | None = None,
    buffered: bool = False,
) -> CallLogRecorder:
    return CallLogRecorder(
        org_id=org_id,
        connection_id=connection_id,
        ai_app_id=ai_app_id,
        wechat_account_id=wechat_account_id,
        buffered=buffered,
    )


def integration_call_prune(*, older_than_days: int | None = None) -> int:
    """Delete call-log rows older than ``INTEGRATION_CALL_RETENTION_DAYS`` (all orgs)."""
    days = older_than_days or settings.INTEGRATION_CALL_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _details = IntegrationCall.objects.filter(at__lt=cutoff).delete()
    return deleted


# -- client factories ----------------------------------------------------------------------


def wechat_client_for(
    connection: PlatformConnection,
    *,
    wechat_account_id: int | None = None,
    recorder: Any = UNSET,
    **client_kwargs: Any,
) -> WeChatPlatformClient:
    """A platform client for ``connection`` whose attempts are logged against its org, the
    connection and (when given) the WeChat account. Pass ``recorder=None`` to log nothing."""
    if recorder is UNSET:
        recorder = call_log_recorder(
            org_id=connection.org_id,
            connection_id=connection.pk,
            wechat_account_id=wechat_account_id,
        )
    client_kwargs = {
        "timeout": settings.INTEGRATION_HTTP_TIMEOUT,
        **CLIENT_DEFAULTS,
        **client_kwargs,
    }
    if connection.provider == PlatformConnection.Provider.GEWE:
        from apps.integrations.clients.gewe import GeWeClient

        return GeWeClient(
            connection.base_url,
            connection.token or None,
            hosted=connection.has_capability(PlatformConnection.Capability.MOMENTS),
            # media: where received files are downloaded (Gewechat: port 2532/download).
            download_base=(connection.extra or {}).get("download_base_url") or None,
            recorder=recorder,
            **client_kwargs,
        )
    if connection.provider == PlatformConnection.Provider.ECLOUD:
        from apps.integrations.clients.ecloud import ECloudClient

        return ECloudClient(
            connection.base_url, connection.token or None, recorder=recorder, **client_kwargs
        )
    raise ApplicationError(_("Unknown platform provider."))


def ai_limiter_for(org_id: int, *, wait_seconds: float | None = None):
    """The organisation's AI in-flight limiter (``AI_MAX_IN_FLIGHT_PER_ORG`` across workers);
    a call waits ``wait_seconds`` (default ``AI_IN_FLIGHT_WAIT_SECONDS``) for a free slot."""
    from apps.core.redis import get_redis, redis_key
    from apps.integrations.clients.concurrency import AIConcurrencyLimiter

    return AIConcurrencyLimiter(
        get_redis(),
        redis_key("integrations", "ai-in-flight", org_id),
        limit=settings.AI_MAX_IN_FLIGHT_PER_ORG,
        timeout=settings.AI_IN_FLIGHT_WAIT_SECONDS if wait_seconds is None else wait_seconds,
        lease_seconds=settings.AI_IN_FLIGHT_LEASE_SECONDS,
    )


def ai_client_for(
    ai_app: AIApp,
    *,
    limiter: Any = UNSET,
    recorder: Any = UNSET,
    **client_kwargs: Any,
) -> AIChatClient:
    """An AI chat client for ``ai_app``: attempts logged, in-flight slots taken from the
    organisation's limiter. ``limiter=None`` / ``recorder=None`` switch either off."""
    if recorder is UNSET:
        recorder = call_log_recorder(org_id=ai_app.org_id, ai_app_id=ai_app.pk)
    if limiter is UNSET:
        limiter = ai_limiter_for(ai_app.org_id)
    client_kwargs = {"timeout": settings.AI_HTTP_TIMEOUT, **CLIENT_DEFAULTS, **client_kwargs}
    common = {"limiter": limiter, "recorder": recorder, **client_kwargs}
    provider = ai_app.provider
    if provider == AIApp.Provider.OPENAI:
        from apps.integrations.clients.openai_compat import OpenAICompatClient

        extra_body = dict((ai_app.extra or {}).get("body") or {})
        # Always cap the answer at what the turn reserves: without max_tokens a provider may
        # answer at length and spend far past the budget.
        if "max_completion_tokens" not in extra_body:
            cap = ai_output_token_cap(ai_app)
            configured = extra_body.get("max_tokens")
            smaller = isinstance(configured, int) and 0 < configured < cap
            extra_body["max_tokens"] = configured if smaller else cap
        return OpenAICompatClient(
            ai_app.base_url,
            ai_app.api_key,
            ai_app.model,
            flavor=openai_flavor(ai_app),
            extra_body=extra_body,
            temperature=None if ai_app.temperature is None else float(ai_app.temperature),
            **common,
        )
    if provider == AIApp.Provider.FASTGPT:
        from apps.integrations.clients.fastgpt import FastGPTClient

        return FastGPTClient(
            ai_app.base_url,
            ai_app.api_key,
            app_id=ai_app.app_id or None,
            max_tokens=ai_output_token_cap(ai_app),
            max_tokens_variable=_max_tokens_variable(ai_app),
            **common,
        )
    if provider == AIApp.Provider.DIFY:
        from apps.integrations.clients.dify import DifyClient

        # Dify takes no per-request limit: only an input variable the app may read (see the
        # client's docstring); the app's own model config is what caps the answer.
        return DifyClient(
            ai_app.base_url,
            ai_app.api_key,
            max_tokens=ai_output_token_cap(ai_app),
            max_tokens_input=_max_tokens_variable(ai_app),
            **common,
        )
    raise ApplicationError(_("Unknown AI provider."))


def ai_output_token_cap(ai_app: AIApp) -> int:
    """The most output tokens one call of ``ai_app`` may produce: what a turn reserves in the
    budget and sends as ``max_tokens`` (the app's own value, else a sane default)."""
    return int(ai_app.max_tokens or settings.CONVERSATION_AI_RESERVE_OUTPUT_TOKENS)


def _max_tokens_variable(ai_app: AIApp) -> str | None:
    """``extra["max_tokens_variable"]``: the FastGPT variable / Dify input that also receives
    the output cap, for apps whose workflow reads it (none by default)."""
    name = (ai_app.extra or {}).get("max_tokens_variable")
    return name.strip() if isinstance(name, str) and name.strip() else None


def openai_flavor(ai_app: AIApp) -> str:
    """DashScope's compatible mode gives some error codes other meanings (see the spec)."""
    flavor = (ai_app.extra or {}).get("flavor")
    if flavor in ("openai", "dashscope"):
        return flavor
    return "dashscope" if "dashscope" in ai_app.base_url else "openai"


def with_system_prompt(ai_app: AIApp, messages: Sequence[dict] | str) -> list[dict]:
    """Messages with the app's system prompt first (unless the caller sent its own)."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    messages = [dict(m) for m in messages]
    if ai_app.system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": ai_app.system_prompt})
    return messages


def _require_enabled(ai_app: AIApp) -> None:
    if not ai_app.enabled:
        raise ApplicationError(_("The AI app is disabled."), code="ai_app_disabled")


def ai_chat(
    *,
    ai_app: AIApp,
    messages: Sequence[dict] | str,
    conversation_id: str | None = None,
    user: str | None = None,
    variables: dict | None = None,
    client: AIChatClient | None = None,
) -> ChatResult:
    """One blocking AI turn with the app's system prompt; logged and concurrency-limited.
    Raises the clients' typed ``IntegrationError`` subclasses."""
    _require_enabled(ai_app)
    client = client or ai_client_for(ai_app)
    return client.chat(
        with_system_prompt(ai_app, messages),
        conversation_id=conversation_id,
        user=user,
        variables=variables,
    )


def ai_chat_stream(
    *,
    ai_app: AIApp,
    messages: Sequence[dict] | str,
    conversation_id: str | None = None,
    user: str | None = None,
    variables: dict | None = None,
    client: AIChatClient | None = None,
) -> Iterator[str | ChatResult]:
    """A streamed AI turn: text deltas, then the final ``ChatResult`` (see ``chat_stream``)."""
    _require_enabled(ai_app)
    client = client or ai_client_for(ai_app)
    return client.chat_stream(
        with_system_prompt(ai_app, messages),
        conversation_id=conversation_id,
        user=user,
        variables=variables,
    )


# -- platform connections ------------------------------------------------------------------


def _connection_for_update(*, org, connection_id: int) -> PlatformConnection:
    try:
        return PlatformConnection.objects.select_for_update().get(org=org, id=connection_id)
    except PlatformConnection.DoesNotExist:
        raise NotFoundError(_("Connection not found.")) from None


def _audit_credentials(*, org, actor, target, fields: list[str], action_name: str) -> None:
    audit_record(
        action=AuditEvent.Action.CREDENTIALS_CHANGED,
        org=org,
        actor=actor,
        target=target,
        changes={"fields": fields, "operation": action_name},
    )


@transaction.atomic
def connection_create(
    *,
    org,
    actor=None,
    provider: str,
    name: str,
    base_url: str,
    token: str = "",
    account: str = "",
    password: str = "",
    capabilities: list[str] | None = None,
    extra: dict | None = None,
    status: str = PlatformConnection.Status.UNKNOWN,
) -> PlatformConnection:
    connection = PlatformConnection(
        org=org,
        status=status,
        provider=provider,
        name=name,
        base_url=base_url.rstrip("/"),
        token=token,
        account=account,
        password=password,
        capabilities=list(capabilities or []),
        extra=dict(extra or {}),
    )
    connection.full_clean(validate_constraints=False)
    _check_unique_name(PlatformConnection, org=org, name=name)
    connection.save(force_insert=True)
    secret_fields = [f for f in ("token", "password") if getattr(connection, f)]
    _audit_credentials(
        org=org, actor=actor, target=connection, fields=secret_fields, action_name="created"
    )
    return connection


def _check_unique_name(model, *, org, name: str, exclude_id: int | None = None) -> None:
    queryset = model.objects.filter(org=org, name=name)
    if exclude_id is not None:
        queryset = queryset.exclude(id=exclude_id)
    if queryset.exists():
        raise ApplicationError(
            _("The name is already in use in this organization."),
            code="duplicate",
            fields={"name": [_("The name is already in use in this organization.")]},
        )


@transaction.atomic
def connection_update(
    *,
    org,
    connection_id: int,
    actor=None,
    name: str = UNSET,
    base_url: str = UNSET,
    token: str = UNSET,
    account: str = UNSET,
    password: str = UNSET,
    capabilities: list[str] = UNSET,
    extra: dict = UNSET,
    status: str = UNSET,
) -> PlatformConnection:
    """Change a connection. Secrets are write-only: an omitted or empty secret is kept (use
    ``connection_clear_secret`` to remove one). The provider cannot change."""
    connection = _connection_for_update(org=org, connection_id=connection_id)
    changed: list[str] = []
    secret_changed: list[str] = []
    for field, value in (
        ("name", name),
        ("base_url", base_url),
        ("account", account),
        ("capabilities", capabilities),
        ("extra", extra),
        ("status", status),
    ):
        if value is UNSET:
            continue
        if field == "base_url":
            value = value.rstrip("/")
        if getattr(connection, field) != value:
            setattr(connection, field, value)
            changed.append(field)
    for field, value in (("token", token), ("password", password)):
        if value is UNSET or value == "" or value == getattr(connection, field):
            continue
        setattr(connection, field, value)
        changed.append(field)
        secret_changed.append(field)
    if not changed:
        return connection
    connection.full_clean(validate_constraints=False)
    if "name" in changed:
        _check_unique_name(
            PlatformConnection, org=org, name=connection.name, exclude_id=connection.id
        )
    connection.save(update_fields=[*changed, "updated_at"])
    if secret_changed:
        _audit_credentials(
            org=org, actor=actor, target=connection, fields=secret_changed, action_name="updated"
        )
    return connection


@transaction.atomic
def connection_rotate_secret(*, org, connection_id: int, actor=None) -> PlatformConnection:
    """Give the connection a new webhook secret; the old webhook URL stops working at once.
    The platform must be told the new URL (``connection_set_callback``)."""
    connection = _connection_for_update(org=org, connection_id=connection_id)
    connection.webhook_secret = new_webhook_secret()
    connection.save(update_fields=["webhook_secret", "updated_at"])
    _audit_credentials(
        org=org,
        actor=actor,
        target=connection,
        fields=["webhook_secret"],
        action_name="rotated",
    )
    return connection


@transaction.atomic
def connection_delete(*, org, connection_id: int, actor=None) -> None:
    connection = _connection_for_update(org=org, connection_id=connection_id)
    _audit_credentials(
        org=org, actor=actor, target=connection, fields=["token", "password"], action_name="deleted"
    )
    connection.delete()


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one live check of a connection or AI app."""

    ok: bool
    latency_ms: int
    detail: str = ""
    error_class: str | None = None
    text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


def _probe_connection(client: WeChatPlatformClient, connection: PlatformConnection) -> str:
    """A cheap authenticated call that proves the credentials and the base URL work."""
    if connection.provider == PlatformConnection.Provider.GEWE:
        devices = client.list_devices()  # /login/deviceList
        return _("%(count)d device(s) known to this token.") % {"count": len(devices)}
    if not client.authorization and connection.account and connection.password:
        client.member_login(connection.account, connection.password)
    # Adapter: the E云 client has no public "online accounts" call yet; /queryLoginWx through
    # its logged call path is the cheapest authenticated request.
    accounts = client._post("query_login_wx", "/queryLoginWx") or []
    return _("%(count)d account(s) online.") % {"count": len(accounts)}


def connection_test(*, org, connection_id: int) -> CheckResult:
    """Call the platform once (outside any transaction), then store status and latency."""
    connection = PlatformConnection.objects.filter(org=org, id=connection_id).first()
    if connection is None:
        raise NotFoundError(_("Connection not found."))
    started = time.monotonic()
    try:
        client = wechat_client_for(connection)
        detail = _probe_connection(client, connection)
        result = CheckResult(ok=True, latency_ms=_ms_since(started), detail=detail)
    except IntegrationError as exc:
        result = CheckResult(
            ok=False,
            latency_ms=_ms_since(started),
            detail=redact(str(exc), _connection_secrets(connection))[:300],
            error_class=type(exc).__name__,
        )
    status = PlatformConnection.Status.OK if result.ok else PlatformConnection.Status.ERROR
    if connection.status == PlatformConnection.Status.DISABLED:
        status = PlatformConnection.Status.DISABLED
    PlatformConnection.objects.filter(org=org, id=connection_id).update(
        status=status,
        status_detail=result.detail[:300],
        last_checked_at=timezone.now(),
        last_latency_ms=result.latency_ms,
        updated_at=timezone.now(),
    )
    return result


def connection_set_callback(*, org, connection_id: int) -> PlatformConnection:
    """Tell the platform to post events to the connection's current webhook URL."""
    connection = PlatformConnection.objects.filter(org=org, id=connection_id).first()
    if connection is None:
        raise NotFoundError(_("Connection not found."))
    try:
        wechat_client_for(connection).set_callback(connection.webhook_url)
    except AuthError:
        raise ApplicationError(
            _("The platform refused the connection's credentials; update the token."),
            code="platform_auth_failed",
        ) from None
    except IntegrationError as exc:
        raise ApplicationError(
            _("The platform did not accept the callback URL: %(detail)s")
            % {"detail": redact(str(exc), _connection_secrets(connection))[:300]},
            code="platform_error",
        ) from None
    return connection


def _connection_secrets(connection: PlatformConnection) -> list[str]:
    return [connection.token, connection.password, connection.webhook_secret]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# -- AI apps -------------------------------------------------------------------------------


def _ai_app_for_update(*, org, ai_app_id: int) -> AIApp:
    try:
        return AIApp.objects.select_for_update().get(org=org, id=ai_app_id)
    except AIApp.DoesNotExist:
        raise NotFoundError(_("AI app not found.")) from None


def _clear_other_defaults(ai_app: AIApp) -> None:
    """Only one default per org and purpose: the newest wins (the constraint backs this up)."""
    AIApp.objects.filter(org_id=ai_app.org_id, purpose=ai_app.purpose, is_default=True).exclude(
        id=ai_app.id
    ).update(is_default=False, updated_at=timezone.now())


@transaction.atomic
def ai_app_create(
    *,
    org,
    actor=None,
    provider: str,
    name: str,
    base_url: str,
    api_key: str = "",
    model: str = "",
    app_id: str = "",
    streaming: bool = False,
    temperature=None,
    max_tokens: int | None = None,
    system_prompt: str = "",
    purpose: str = AIApp.Purpose.REPLY,
    is_default: bool = False,
    enabled: bool = True,
    extra: dict | None = None,
) -> AIApp:
    ai_app = AIApp(
        org=org,
        provider=provider,
        name=name,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        model=model,
        app_id=app_id,
        streaming=streaming,
        temperature=temperature,
        max_tokens=max_tokens,
        system_prompt=system_prompt,
        purpose=purpose,
        is_default=is_default,
        enabled=enabled,
        extra=dict(extra or {}),
    )
    ai_app.full_clean(validate_constraints=False)
    _check_unique_name(AIApp, org=org, name=name)
    if is_default:
        AIApp.objects.select_for_update().filter(org=org, purpose=purpose, is_default=True).update(
            is_default=False, updated_at=timezone.now()
        )
    ai_app.save(force_insert=True)
    _audit_credentials(
        org=org,
        actor=actor,
        target=ai_app,
        fields=["api_key"] if api_key else [],
        action_name="created",
    )
    return ai_app


@transaction.atomic
def ai_app_update(
    *,
    org,
    ai_app_id: int,
    actor=None,
    name: str = UNSET,
    base_url: str = UNSET,
    api_key: str = UNSET,
    model: str = UNSET,
    app_id: str = UNSET,
    streaming: bool = UNSET,
    temperature=UNSET,
    max_tokens: int | None = UNSET,
    system_prompt: str = UNSET,
    purpose: str = UNSET,
    is_default: bool = UNSET,
    enabled: bool = UNSET,
    extra: dict = UNSET,
) -> AIApp:
    """Change an AI app. The API key is write-only: omitted or empty keeps the stored key."""
    ai_app = _ai_app_for_update(org=org, ai_app_id=ai_app_id)
    changed: list[str] = []
    for field, value in (
        ("name", name),
        ("base_url", base_url),
        ("model", model),
        ("app_id", app_id),
        ("streaming", streaming),
        ("temperature", temperature),
        ("max_tokens", max_tokens),
        ("system_prompt", system_prompt),
        ("purpose", purpose),
        ("is_default", is_default),
        ("enabled", enabled),
        ("extra", extra),
    ):
        if value is UNSET:
            continue
        if field == "base_url":
            value = value.rstrip("/")
        if getattr(ai_app, field) != value:
            setattr(ai_app, field, value)
            changed.append(field)
    key_changed = api_key is not UNSET and api_key != "" and api_key != ai_app.api_key
    if key_changed:
        ai_app.api_key = api_key
        changed.append("api_key")
    if not changed:
        return ai_app
    ai_app.full_clean(validate_constraints=False)
    if "name" in changed:
        _check_unique_name(AIApp, org=org, name=ai_app.name, exclude_id=ai_app.id)
    if ai_app.is_default and ({"is_default", "purpose"} & set(changed)):
        _clear_other_defaults(ai_app)
    ai_app.save(update_fields=[*changed, "updated_at"])
    if key_changed:
        _audit_credentials(
            org=org, actor=actor, target=ai_app, fields=["api_key"], action_name="updated"
        )
    return ai_app


@transaction.atomic
def ai_app_delete(*, org, ai_app_id: int, actor=None) -> None:
    ai_app = _ai_app_for_update(org=org, ai_app_id=ai_app_id)
    _audit_credentials(
        org=org, actor=actor, target=ai_app, fields=["api_key"], action_name="deleted"
    )
    ai_app.delete()


AI_TEST_PROMPT = "Reply with one short sentence to confirm you are reachable."


def ai_app_test(*, org, ai_app_id: int, prompt: str = "") -> CheckResult:
    """Run one real turn (blocking or streamed, as the app is configured) outside any
    transaction; store the outcome on the app and return text, tokens and latency."""
    ai_app = AIApp.objects.filter(org=org, id=ai_app_id).first()
    if ai_app is None:
        raise NotFoundError(_("AI app not found."))
    started = time.monotonic()
    try:
        messages = with_system_prompt(ai_app, prompt or AI_TEST_PROMPT)
        client = ai_client_for(ai_app)
        user = f"org{org.pk}-connection-test"
        if ai_app.streaming:
            chat = None
            for item in client.chat_stream(messages, user=user):
                if isinstance(item, ChatResult):
                    chat = item
        else:
            chat = client.chat(messages, user=user)
        result = CheckResult(
            ok=True,
            latency_ms=_ms_since(started),
            text=chat.text if chat else "",
            input_tokens=chat.input_tokens if chat else None,
            output_tokens=chat.output_tokens if chat else None,
        )
    except IntegrationError as exc:
        result = CheckResult(
            ok=False,
            latency_ms=_ms_since(started),
            detail=redact(str(exc), [ai_app.api_key])[:300],
            error_class=type(exc).__name__,
        )
    ai_app.last_checked_at = timezone.now()
    ai_app.last_check_ok = result.ok
    ai_app.last_check_detail = result.detail[:300]
    ai_app.last_latency_ms = result.latency_ms
    # Saved through save() (not update()) so the cache-invalidation signal runs.
    ai_app.save(
        update_fields=[
            "last_checked_at",
            "last_check_ok",
            "last_check_detail",
            "last_latency_ms",
            "updated_at",
        ]
    )
    return result


# -- sync ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    connections: dict[int, CheckResult]
    ai_apps: dict[int, CheckResult]


def integrations_sync(*, org) -> SyncResult:
    """Check every connection (not disabled) and every enabled AI app of ``org`` live."""
    connections = {
        connection_id: connection_test(org=org, connection_id=connection_id)
        for connection_id in PlatformConnection.objects.filter(org=org)
        .exclude(status=PlatformConnection.Status.DISABLED)
        .values_list("id", flat=True)
    }
    ai_apps = {
        ai_app_id: ai_app_test(org=org, ai_app_id=ai_app_id)
        for ai_app_id in AIApp.objects.filter(org=org, enabled=True).values_list("id", flat=True)
    }
    return SyncResult(connections=connections, ai_apps=ai_apps)
