"""Log context beyond requests: Celery tasks name the organisation, conversation and account of
their keyword arguments, and a WebSocket consumer names its socket, user and organisation."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import signals

from apps.core import logcontext, ws
from tests.realtime.conftest import ws_open


def test_a_task_runs_with_the_ids_its_arguments_name():
    kwargs = {"org_id": 5, "conversation_id": 77, "account_id": 9, "text": "客户的消息"}
    signals.task_prerun.send(sender=None, task_id="t-1", task=None, args=(), kwargs=kwargs)
    try:
        context = logcontext.current()
    finally:
        signals.task_postrun.send(sender=None, task_id="t-1", task=None)
    assert context == {"task_id": "t-1", "org_id": 5, "conversation_id": 77, "account_id": 9}
    assert logcontext.current() == {}  # the next task starts clean


def test_only_plain_ids_are_bound_from_task_arguments():
    assert logcontext.task_ids({"org_id": "5; drop", "conversation_id": True}) == {}
    assert logcontext.task_ids(None) == {}


def test_a_socket_logs_with_its_connection_user_and_organisation(db, member, org, monkeypatch):
    seen = {}
    register = ws.ws_registry.register

    async def spy(**kwargs):
        seen.update(logcontext.current())
        return await register(**kwargs)

    monkeypatch.setattr(ws.ws_registry, "register", spy)

    async def scenario():
        communicator, event = await ws_open("/ws/admin/monitor/", user=member)
        await communicator.disconnect()
        return event

    event = async_to_sync(scenario)()
    assert event["type"] == "connection_established"
    assert seen["user_id"] == member.pk and seen["org_id"] == org.pk
    assert seen["request_id"] == "ws-" + event["data"]["connection_id"][:16]
