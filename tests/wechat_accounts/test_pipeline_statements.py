"""The outbound delivery's statements (issue 19): the message loaded with its order check, the
claim, the call's start marked just before the platform call, ``sent`` with its ledger and call
log rows, and what still holds when metering fails."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.billing.models import CostLedger, UsageMonthly
from apps.conversations import outbound
from apps.conversations.models import Message
from apps.conversations.outbound import delivery
from apps.conversations.tasks import outbound_deliver
from apps.integrations.models import IntegrationCall
from apps.wechat_accounts import services
from apps.wechat_accounts.models import WeChatAccount
from apps.wechat_accounts.services.accounts import SEEN_REFRESH_SECONDS
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db

TO = "wxid_cust_statements"
_SAVEPOINT = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b")


def _queued(account, capture, text="hello") -> Message:
    """A queued message whose delivery has not run (the account is offline meanwhile)."""
    WeChatAccount.objects.filter(pk=account.pk).update(status=WeChatAccount.Status.OFFLINE)
    with capture(execute=True):
        message = outbound.send(org=account.org, account=account, to_wxid=TO, text=text)
    WeChatAccount.objects.filter(pk=account.pk).update(status=WeChatAccount.Status.ONLINE)
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED
    return message


def _send_calls(account) -> int:
    return IntegrationCall.objects.filter(
        org=account.org, wechat_account_id=account.pk, operation="send_text"
    ).count()


@requires_postgres
def test_a_delivery_is_five_statements_on_postgresql(
    online_account, gewe, django_capture_on_commit_callbacks
):
    first = _queued(online_account, django_capture_on_commit_callbacks, "warm")
    assert outbound_deliver(org_id=first.org_id, message_id=first.pk) == "sent"  # price cache
    message = _queued(online_account, django_capture_on_commit_callbacks)
    with CaptureQueriesContext(connection) as queries:
        assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "sent"
    statements = [q["sql"] for q in queries.captured_queries if not _SAVEPOINT.match(q["sql"])]
    # load + order check, claim, call started, sent + ledger + sums + call log, the contact's
    # next message
    assert len(statements) == 5, statements
    message.refresh_from_db()
    assert message.status == Message.Status.SENT and message.platform_msg_id
    assert CostLedger.objects.filter(request_id=f"wechat-send-{message.pk}").count() == 1
    assert UsageMonthly.objects.get(org=online_account.org, wechat_account_id=online_account.pk)
    assert _send_calls(online_account) == 2
    assert len(gewe.sent) == 2


def test_the_call_is_marked_started_just_before_the_platform_call(
    online_account, gewe, django_capture_on_commit_callbacks, monkeypatch
):
    message = _queued(online_account, django_capture_on_commit_callbacks)
    seen = {}
    real_send = delivery._platform_send

    def send_and_look(msg, recorder):
        seen["row"] = Message.objects.values("status", "claimed_at", "call_started_at").get(
            pk=msg.pk
        )
        return real_send(msg, recorder)

    monkeypatch.setattr(delivery, "_platform_send", send_and_look)
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "sent"
    row = seen["row"]
    assert row["status"] == Message.Status.SENDING
    # A worker killed from here on is treated as "the platform may have sent it".
    assert row["call_started_at"] is not None and row["call_started_at"] >= row["claimed_at"]


def test_a_worker_killed_between_the_claim_and_the_call_is_requeued(
    online_account, gewe, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.WECHAT_SEND_AMBIGUOUS_POLICY = "at_most_once"
    message = _queued(online_account, django_capture_on_commit_callbacks)

    def killed_at_the_push(msg):
        raise SystemExit("worker killed")

    monkeypatch.setattr(delivery, "_push_status", killed_at_the_push)
    with pytest.raises(SystemExit):
        outbound_deliver(org_id=message.org_id, message_id=message.pk)
    monkeypatch.undo()
    later = timezone.now() + timedelta(seconds=settings.WECHAT_SEND_LEASE_SECONDS + 1)
    result = outbound.outbound_recover(org=online_account.org, now=later)
    assert result.requeued == 1 and result.failed_unknown == 0
    # Nothing had reached the platform, so the re-queued message is sent, once.
    assert len(gewe.sent) == 1


def test_a_worker_killed_after_the_claim_is_not_resent(
    online_account, gewe, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.WECHAT_SEND_AMBIGUOUS_POLICY = "at_most_once"
    message = _queued(online_account, django_capture_on_commit_callbacks)

    def killed(msg, recorder):
        raise SystemExit("worker killed")

    monkeypatch.setattr(delivery, "_platform_send", killed)
    with pytest.raises(SystemExit):
        outbound_deliver(org_id=message.org_id, message_id=message.pk)
    later = timezone.now() + timedelta(seconds=settings.WECHAT_SEND_LEASE_SECONDS + 1)
    result = outbound.outbound_recover(org=online_account.org, now=later)
    assert result.failed_unknown == 1 and result.requeued == 0
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and message.error.startswith("delivery_unknown")
    assert gewe.sent == []


def test_a_metering_failure_still_marks_the_message_sent(
    online_account, gewe, django_capture_on_commit_callbacks, monkeypatch
):
    message = _queued(online_account, django_capture_on_commit_callbacks)

    def broken(**kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(delivery, "record_usage_claimed", broken)
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "sent"
    message.refresh_from_db()
    assert message.status == Message.Status.SENT and message.platform_msg_id
    assert not CostLedger.objects.filter(request_id=f"wechat-send-{message.pk}").exists()
    assert _send_calls(online_account) == 1  # the call log row is written on its own
    assert len(gewe.sent) == 1


def test_a_failure_after_the_metering_statement_keeps_one_call_row(
    online_account, gewe, django_capture_on_commit_callbacks, monkeypatch
):
    message = _queued(online_account, django_capture_on_commit_callbacks)
    real = delivery.record_usage_claimed

    def fails_after(**kwargs):
        real(**kwargs)
        raise RuntimeError("threshold check failed")

    monkeypatch.setattr(delivery, "record_usage_claimed", fails_after)
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "sent"
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert CostLedger.objects.filter(request_id=f"wechat-send-{message.pk}").count() == 1
    assert _send_calls(online_account) == 1


def test_a_failed_send_still_writes_its_call_row(
    online_account, gewe, django_capture_on_commit_callbacks
):
    gewe.add_fault("error", path="/message/postText", status=503)
    message = _queued(online_account, django_capture_on_commit_callbacks)
    outbound_deliver(org_id=message.org_id, message_id=message.pk)  # eager: retried inline
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and message.attempts == 3
    calls = IntegrationCall.objects.filter(org=online_account.org, operation="send_text")
    assert [(c.ok, c.http_status) for c in calls] == [(False, 503)] * 3


def test_a_message_changed_during_the_send_is_not_marked_sent(
    online_account, gewe, django_capture_on_commit_callbacks, monkeypatch
):
    message = _queued(online_account, django_capture_on_commit_callbacks)
    real_send = delivery._platform_send

    def recovered_meanwhile(msg, recorder):
        sent = real_send(msg, recorder)
        Message.objects.filter(pk=msg.pk).update(status=Message.Status.FAILED)
        return sent

    monkeypatch.setattr(delivery, "_platform_send", recovered_meanwhile)
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "skipped"
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert not CostLedger.objects.filter(request_id=f"wechat-send-{message.pk}").exists()
    assert _send_calls(online_account) == 1


def test_last_seen_is_refreshed_at_most_once_a_minute(
    online_account, gewe, django_capture_on_commit_callbacks
):
    recent = timezone.now() - timedelta(seconds=10)
    WeChatAccount.objects.filter(pk=online_account.pk).update(last_seen_at=recent)
    message = _queued(online_account, django_capture_on_commit_callbacks)
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "sent"
    online_account.refresh_from_db()
    assert online_account.last_seen_at == recent

    old = timezone.now() - timedelta(seconds=SEEN_REFRESH_SECONDS + 5)
    WeChatAccount.objects.filter(pk=online_account.pk).update(last_seen_at=old)
    message = _queued(online_account, django_capture_on_commit_callbacks, "again")
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "sent"
    online_account.refresh_from_db()
    assert online_account.last_seen_at > old + timedelta(seconds=30)


def test_account_mark_seen_writes_only_its_org_account(online_account, other_org):
    online_account.last_seen_at = None
    assert services.account_mark_seen(account=online_account) is True
    assert services.account_mark_seen(account=online_account) is False
    stored = WeChatAccount.objects.get(pk=online_account.pk)
    assert stored.last_seen_at == online_account.last_seen_at
    online_account.org_id = other_org.pk  # a row of another org is never written
    online_account.last_seen_at = None
    services.account_mark_seen(account=online_account)
    assert WeChatAccount.objects.get(pk=online_account.pk).last_seen_at == stored.last_seen_at
