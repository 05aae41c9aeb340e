"""Structured logging: who and what each log line is about.

Every request, Celery task and WebSocket consumer binds a small context (request id, organisation,
user, task id, and the conversation or account when one is at hand) in a ``contextvars`` variable;
``ContextFilter`` copies it onto every log record, so the text format and the JSON format
(``LOG_FORMAT=json``, one object per line) both carry it. Message bodies and secrets are never
bound: only ids.

    from apps.core.logcontext import bind
    bind(conversation_id=conversation.id)
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

FIELDS = ("request_id", "org_id", "user_id", "task_id", "conversation_id", "account_id")
REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"
RESPONSE_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_context: ContextVar[dict | None] = ContextVar("log_context", default=None)


def current() -> dict:
    return dict(_context.get() or {})


def bind(**values) -> None:
    """Add ids to the current context (``None`` values are ignored)."""
    merged = current()
    merged.update({key: value for key, value in values.items() if value is not None})
    _context.set(merged)


def reset(**values) -> object:
    """Start a fresh context (a new request or task); returns the token for ``restore``."""
    return _context.set({key: value for key, value in values.items() if value is not None})


def restore(token) -> None:
    _context.reset(token)


def request_id_from(meta: dict) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one."""
    given = (meta.get(REQUEST_ID_HEADER) or "").strip()
    return given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Copies the bound ids onto the record (``-`` where unknown, so text formats line up)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        for field in FIELDS:
            if not hasattr(record, field):
                setattr(record, field, context.get(field, "-"))
        return True


class RequestContextMiddleware:
    """Binds the request id (accepted from ``X-Request-ID`` or generated) and the user, and
    returns the id in the response; the organisation is bound where it is resolved."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.META)
        request.request_id = request_id
        token = reset(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            restore(token)
        response[RESPONSE_HEADER] = request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        # The session user is known here (AuthenticationMiddleware ran); API views bind the
        # JWT user and the organisation when they resolve them (apps.core.tenancy).
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            bind(user_id=user.pk)
        return None


# Task keyword arguments that name what a task is about (tasks take ids, STYLE.md).
TASK_ID_KWARGS = ("org_id", "conversation_id", "account_id")


def task_ids(kwargs: dict | None) -> dict:
    """The organisation, conversation and account a task's keyword arguments name (plain ids
    only: anything else a caller passed is not logged)."""
    found = {}
    for argument in TASK_ID_KWARGS:
        value = (kwargs or {}).get(argument)
        if isinstance(value, int) and not isinstance(value, bool):
            found[argument] = value
    return found


def connect_celery_signals() -> None:
    """Each task runs in a fresh context carrying its task id, the caller's request id when the
    task was sent from a request, and the organisation, conversation and account its keyword
    arguments name."""
    from celery import signals

    def _before(task_id=None, task=None, kwargs=None, **_kwargs):
        headers = getattr(getattr(task, "request", None), "headers", None) or {}
        reset(task_id=task_id, request_id=headers.get("request_id"), **task_ids(kwargs))

    def _after(**_kwargs):
        _context.set(None)

    def _publish(headers=None, **_kwargs):
        request_id = current().get("request_id")
        if headers is not None and request_id and "request_id" not in headers:
            headers["request_id"] = request_id

    signals.task_prerun.connect(_before, weak=False, dispatch_uid="logcontext-prerun")
    signals.task_postrun.connect(_after, weak=False, dispatch_uid="logcontext-postrun")
    signals.before_task_publish.connect(_publish, weak=False, dispatch_uid="logcontext-publish")
