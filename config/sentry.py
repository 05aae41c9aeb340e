"""Error reporting to Sentry, only when ``SENTRY_DSN`` is set (nothing is imported otherwise).

No personal data and no request bodies are sent: customers' messages travel in webhook and API
bodies, and credentials in headers. Events keep the request id, organisation and task id tags of
``apps.core.logcontext`` so a report can be matched with the log lines around it.
"""

from __future__ import annotations

_SCRUBBED_HEADERS = {"authorization", "cookie", "x-gewe-token", "x-csrftoken"}


def _before_send(event, hint):
    request = event.get("request") or {}
    request.pop("data", None)
    request.pop("cookies", None)
    headers = request.get("headers") or {}
    for name in list(headers):
        if name.lower() in _SCRUBBED_HEADERS:
            headers[name] = "[Filtered]"
    try:
        from apps.core.logcontext import current

        tags = event.setdefault("tags", {})
        for key, value in current().items():
            tags.setdefault(key, str(value))
    except Exception:  # noqa: BLE001,S110 - reporting must never fail the request
        pass
    return event


def init_sentry(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.redis import RedisIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration(), RedisIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=_before_send,
    )
