"""The outbound pipeline against the GeWe simulator: kinds, retries, recovery, order, limits."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing.models import CostLedger
from apps.conversations import outbound
from apps.conversations.models import Conversation, Message
from apps.conversations.tasks import outbound_deliver, outbound_recover
from apps.core.exceptions import ApplicationError
from apps.integrations.models import IntegrationCall
from apps.wechat_accounts import send_policy, services
from apps.wechat_accounts.models import WeChatAccount

pytestmark = pytest.mark.django_db

TO = "wxid_cust0001"


def _send(account, capture, **kwargs):
    kwargs.setdefault("to_wxid", TO)
    kwargs.setdefault("kind", "text")
    if kwargs["kind"] == "text":
        kwargs.setdefault("text", "hello")
    with capture(execute=True):
        message = outbound.send(org=account.org, account=account, **kwargs)
    message.refresh_from_db()
    return message


@pytest.mark.parametrize(
    ("kind", "extra", "sim_type"),
    [
        ("text", {"text": "你好"}, 1),
        ("image", {"url": "https://cdn.example.com/a.png"}, 3),
        ("file", {"url": "https://cdn.example.com/price.pdf", "file_name": "price.pdf"}, 6),
        ("link", {"url": "https://shop.example.com", "title": "Offer", "description": "x"}, 5),
    ],
)
def test_send_each_kind_through_the_simulator(
    online_account, gewe, django_capture_on_commit_callbacks, kind, extra, sim_type
):
    message = _send(online_account, django_capture_on_commit_callbacks, kind=kind, **extra)
    assert message.status == Message.Status.SENT
    assert message.platform_msg_id and int(message.platform_msg_id) > 2**53
    assert message.attempts == 1 and message.sent_at is not None
    assert [s["type"] for s in gewe.sent] == [sim_type]
    assert gewe.sent[0]["to"] == TO
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.account_id == online_account.pk
    assert conversation.contact.wxid == TO
    assert IntegrationCall.objects.filter(
        org=online_account.org, wechat_account_id=online_account.pk, operation__startswith="send"
    ).exists()
    assert CostLedger.objects.filter(request_id=f"wechat-send-{message.pk}").count() == 1


def test_send_validates_input(online_account):
    with pytest.raises(ApplicationError) as exc:
        outbound.send(org=online_account.org, account=online_account, to_wxid="", kind="image")
    assert set(exc.value.fields) == {"to", "url"}


def test_send_is_idempotent_by_client_msg_id(
    online_account, gewe, django_capture_on_commit_callbacks
):
    first = _send(online_account, django_capture_on_commit_callbacks, client_msg_id="k1")
    second = _send(online_account, django_capture_on_commit_callbacks, client_msg_id="k1")
    assert first.pk == second.pk
    assert len(gewe.sent) == 1


def test_retry_after_500_sends_exactly_once(
    online_account, gewe, django_capture_on_commit_callbacks
):
    gewe.add_fault("error", path="/message/postText", status=500, times=1)
    message = _send(online_account, django_capture_on_commit_callbacks)
    assert message.status == Message.Status.SENT
    assert message.attempts == 2
    assert len(gewe.sent) == 1


def test_retries_exhausted_fail_with_reason(
    online_account, gewe, django_capture_on_commit_callbacks
):
    gewe.add_fault("error", path="/message/postText", status=503)
    message = _send(online_account, django_capture_on_commit_callbacks)
    assert message.status == Message.Status.FAILED
    assert message.attempts == 3
    assert "503" in message.error
    assert gewe.sent == []


def test_delivery_task_twice_is_a_no_op(online_account, gewe, django_capture_on_commit_callbacks):
    message = _send(online_account, django_capture_on_commit_callbacks)
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "skipped"
    assert outbound_deliver(org_id=message.org_id, message_id=message.pk) == "skipped"
    assert len(gewe.sent) == 1


def test_deliver_task_of_another_org_does_nothing(
    online_account, other_org, gewe, django_capture_on_commit_callbacks
):
    online_account.status = WeChatAccount.Status.OFFLINE  # keep the message queued
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    message = _send(online_account, django_capture_on_commit_callbacks)
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="online")
    assert outbound_deliver(org_id=other_org.pk, message_id=message.pk) == "skipped"
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED and gewe.sent == []
    assert outbound_recover(org_id=other_org.pk) == {
        "requeued": 0,
        "failed_unknown": 0,
        "expired": 0,
        "reenqueued": 0,
    }


def test_account_offline_error_marks_account_offline_and_keeps_message(
    online_account, gewe, django_capture_on_commit_callbacks
):
    gewe.set_offline(online_account.device_id, sends_only=True)  # checkOnline still says true
    with django_capture_on_commit_callbacks(execute=True):
        message = _send(online_account, django_capture_on_commit_callbacks)
    online_account.refresh_from_db()
    assert online_account.status == WeChatAccount.Status.OFFLINE
    assert message.status == Message.Status.QUEUED
    # The online check does not flip it back while sends fail.
    services.account_check_online(org_id=online_account.org_id, account_id=online_account.pk)
    online_account.refresh_from_db()
    assert online_account.status == WeChatAccount.Status.OFFLINE


def test_per_contact_order_is_kept(online_account, gewe, django_capture_on_commit_callbacks):
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    online_account.refresh_from_db()
    texts = [f"m{i}" for i in range(5)]
    messages = [_send(online_account, django_capture_on_commit_callbacks, text=t) for t in texts]
    assert all(m.status == Message.Status.QUEUED for m in messages)
    # A later message cannot go first while an earlier one is unfinished.
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="online")
    assert outbound_deliver(org_id=online_account.org_id, message_id=messages[3].pk) == "waiting"
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    with django_capture_on_commit_callbacks(execute=True):
        services.account_status_change(
            org=online_account.org, account_id=online_account.pk, to_status="online"
        )
    assert [s["body"]["content"] for s in gewe.sent] == texts
    ids = [
        int(m.platform_msg_id)
        for m in Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("id")
    ]
    assert ids == sorted(ids)


def test_quiet_hours_defer_non_urgent_sends(
    online_account, gewe, django_capture_on_commit_callbacks
):
    now_local = timezone.now().astimezone(online_account.org.tzinfo)
    start = (now_local - timedelta(hours=1)).time().replace(microsecond=0)
    end = (now_local + timedelta(hours=1)).time().replace(microsecond=0)
    services.account_update(
        org=online_account.org,
        account_id=online_account.pk,
        quiet_hours_start=start,
        quiet_hours_end=end,
    )
    online_account.refresh_from_db()
    deferred = _send(online_account, django_capture_on_commit_callbacks, to_wxid="wxid_a")
    assert deferred.status == Message.Status.QUEUED
    assert deferred.not_before is not None and deferred.not_before > timezone.now()
    urgent = _send(
        online_account, django_capture_on_commit_callbacks, to_wxid="wxid_b", urgent=True
    )
    assert urgent.status == Message.Status.SENT
    assert [s["to"] for s in gewe.sent] == ["wxid_b"]


def test_quiet_hours_wrapping_midnight():
    account = WeChatAccount(quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(8))
    from apps.orgs.models import Organization

    account.org = Organization(timezone="Asia/Shanghai")
    tz = account.org.tzinfo
    at_23 = dt.datetime(2025, 1, 1, 23, 0, tzinfo=tz)
    assert send_policy.quiet_hours_end(account, at_23) == dt.datetime(2025, 1, 2, 8, 0, tzinfo=tz)
    at_7 = dt.datetime(2025, 1, 2, 7, 0, tzinfo=tz)
    assert send_policy.quiet_hours_end(account, at_7) == dt.datetime(2025, 1, 2, 8, 0, tzinfo=tz)
    assert send_policy.quiet_hours_end(account, dt.datetime(2025, 1, 2, 12, 0, tzinfo=tz)) is None


def test_rate_limit_defers_beyond_the_account_limit(
    online_account, gewe, django_capture_on_commit_callbacks
):
    WeChatAccount.objects.filter(pk=online_account.pk).update(send_limit_per_minute=2)
    online_account.refresh_from_db()
    messages = [
        _send(online_account, django_capture_on_commit_callbacks, to_wxid=f"wxid_{i}")
        for i in range(3)
    ]
    assert [m.status for m in messages] == ["sent", "sent", "queued"]
    result = outbound.outbound_deliver(org_id=online_account.org_id, message_id=messages[2].pk)
    assert result.outcome == "rate_limited" and 0 < result.retry_after <= 60
    assert len(gewe.sent) == 2


def _leave_sending(message, *, call_started: bool):
    past = timezone.now() - timedelta(minutes=10)
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.SENDING,
        claimed_at=past,
        lease_expires_at=past + timedelta(seconds=1),
        call_started_at=past if call_started else None,
        attempts=1,
    )


def test_worker_killed_before_the_call_is_recovered_and_sent(
    online_account, gewe, django_capture_on_commit_callbacks
):
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    message = _send(online_account, django_capture_on_commit_callbacks)
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="online")
    _leave_sending(message, call_started=False)
    result = outbound_recover(org_id=online_account.org_id)
    assert result["requeued"] == 1
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert len(gewe.sent) == 1


def test_worker_killed_during_the_call_is_at_most_once_by_default(
    online_account, gewe, django_capture_on_commit_callbacks
):
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    message = _send(online_account, django_capture_on_commit_callbacks)
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="online")
    _leave_sending(message, call_started=True)
    assert outbound_recover(org_id=online_account.org_id)["failed_unknown"] == 1
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.error.startswith("delivery_unknown")
    assert gewe.sent == []
    # Running recovery again changes nothing.
    assert outbound_recover(org_id=online_account.org_id)["failed_unknown"] == 0


def test_worker_killed_during_the_call_at_least_once_resends(
    online_account, gewe, settings, django_capture_on_commit_callbacks
):
    settings.WECHAT_SEND_AMBIGUOUS_POLICY = "at_least_once"
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    message = _send(online_account, django_capture_on_commit_callbacks)
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="online")
    _leave_sending(message, call_started=True)
    assert outbound_recover(org_id=online_account.org_id)["requeued"] == 1
    message.refresh_from_db()
    assert message.status == Message.Status.SENT


def test_stale_queued_message_is_reenqueued(
    online_account, gewe, django_capture_on_commit_callbacks
):
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    message = _send(online_account, django_capture_on_commit_callbacks)
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="online")
    Message.objects.filter(pk=message.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert outbound_recover(org_id=online_account.org_id)["reenqueued"] == 1
    message.refresh_from_db()
    assert message.status == Message.Status.SENT


def test_expired_queued_message_fails(online_account, gewe, django_capture_on_commit_callbacks):
    WeChatAccount.objects.filter(pk=online_account.pk).update(status="offline")
    message = _send(online_account, django_capture_on_commit_callbacks)
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=2))
    assert outbound_recover(org_id=online_account.org_id)["expired"] == 1
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and message.error.startswith("expired")
