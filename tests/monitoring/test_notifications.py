"""notify(), its delivery channels, and the domain-event receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlparse

import pytest
from django.core import mail

from apps.core import events, realtime
from apps.monitoring import services
from apps.monitoring.models import Notification, NotificationDelivery, NotificationWebhook
from apps.monitoring.sms import LocmemSMSBackend
from apps.monitoring.tasks import notification_delivery_send
from apps.orgs.models import Role
from tests.monitoring.helpers import GroupListener, WebhookReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def sms_outbox(settings):
    settings.NOTIFICATIONS_SMS_BACKEND = "apps.monitoring.sms.LocmemSMSBackend"
    LocmemSMSBackend.outbox = []
    return LocmemSMSBackend.outbox


def test_notify_by_role_stores_and_pushes_to_each_user_group(
    org, owner, member, make_member, outsider, django_capture_on_commit_callbacks
):
    agent = make_member(Role.AGENT)
    listener = GroupListener(
        realtime.group_for_user(org.id, owner.id), realtime.group_for_user(org.id, agent.id)
    )
    with django_capture_on_commit_callbacks(execute=True):
        rows = services.notify(
            org=org,
            roles=[Role.OWNER, Role.ADMIN],
            users=[outsider.id],  # not a member: dropped
            title="Heads up",
            message="Something happened",
            type=Notification.Type.WARNING,
            action_url="/somewhere",
        )
    assert sorted(n.user_id for n in rows) == sorted([owner.id, member.id])
    assert not Notification.objects.filter(user=outsider).exists()
    events_ = listener.events()
    assert [e["type"] for e in events_] == ["notification"]
    assert events_[0]["data"]["title"] == "Heads up"
    assert events_[0]["data"]["auto_close"] is False
    assert mail.outbox == []  # not urgent


def test_notify_rejects_javascript_urls(org, owner):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.notify(org=org, users=[owner], title="x", action_url="javascript:alert(1)")


def test_urgent_sends_email_and_sms(
    org, owner, member, sms_outbox, django_capture_on_commit_callbacks
):
    org.settings = {"notifications": {"sms_numbers": ["+8613800000000"]}}
    org.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(
            org=org, roles=[Role.OWNER, Role.ADMIN], title="Down", type=Notification.Type.URGENT
        )
    assert sorted(m.to[0] for m in mail.outbox) == sorted([owner.email, member.email])
    assert "[Acme Sales] Down" in mail.outbox[0].subject
    assert sms_outbox == [{"to": "+8613800000000", "text": "Down"}]
    assert set(NotificationDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_generic_webhook_is_signed_and_filtered_by_min_type(
    org, owner, receiver, django_capture_on_commit_callbacks
):
    NotificationWebhook.objects.create(
        org=org, name="ops", url=receiver.url, secret="s3cret", min_type="warning"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(org=org, users=[owner], title="Just info")  # below min_type
    assert receiver.requests == []
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(
            org=org, users=[owner], title="Bad", type="error", action_url="/conversations/1"
        )
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    timestamp = request["headers"]["X-Signature-Timestamp"]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + request["raw"], hashlib.sha256)
    assert request["headers"]["X-Signature"] == "sha256=" + expected.hexdigest()
    body = json.loads(request["raw"])
    assert body["notification"]["title"] == "Bad"
    assert body["notification"]["action_url"].endswith("/conversations/1")
    assert body["org_id"] == org.id


def test_dingtalk_robot_gets_its_sign_query_and_markdown(
    org, owner, receiver, django_capture_on_commit_callbacks
):
    NotificationWebhook.objects.create(
        org=org, name="dd", kind="dingtalk", url=receiver.url + "?access_token=t", secret="SEC"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(org=org, users=[owner], title="Budget", type="warning")
    query = parse_qs(urlparse(receiver.requests[0]["path"]).query)
    assert query["access_token"] == ["t"] and "sign" in query and "timestamp" in query
    body = json.loads(receiver.requests[0]["raw"])
    assert body["msgtype"] == "markdown" and body["markdown"]["title"] == "Budget"


def test_webhook_5xx_is_retried_then_failed_and_4xx_fails_at_once(
    org, owner, django_capture_on_commit_callbacks, monkeypatch
):
    from config.celery import app

    # Eager retries run inline only when the eager mode does not propagate the Retry.
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    flaky = WebhookReceiver(status=503)
    broken = WebhookReceiver(status=404)
    try:
        NotificationWebhook.objects.create(org=org, name="flaky", url=flaky.url)
        NotificationWebhook.objects.create(org=org, name="broken", url=broken.url)
        with django_capture_on_commit_callbacks(execute=True):
            services.notify(org=org, users=[owner], title="x", type="error")
    finally:
        flaky.close()
        broken.close()
    by_target = {d.webhook.name: d for d in NotificationDelivery.objects.select_related("webhook")}
    assert len(flaky.requests) == 6  # first try + 5 retries (eager in tests)
    assert by_target["flaky"].status == "failed" and by_target["flaky"].attempts == 6
    assert "HTTP 503" in by_target["flaky"].last_error
    assert len(broken.requests) == 1
    assert by_target["broken"].status == "failed"


def test_delivery_task_run_twice_sends_once(org, owner, receiver):
    webhook = NotificationWebhook.objects.create(org=org, name="ops", url=receiver.url)
    services.notify(org=org, users=[owner], title="x", type="error")  # no commit: not sent yet
    delivery = NotificationDelivery.objects.get(webhook=webhook)
    assert notification_delivery_send(org_id=org.id, delivery_id=delivery.id) == "sent"
    assert notification_delivery_send(org_id=org.id, delivery_id=delivery.id) == "skipped"
    assert len(receiver.requests) == 1


def test_delivery_task_of_other_org_does_nothing(org, other_org, owner, receiver):
    webhook = NotificationWebhook.objects.create(org=org, name="ops", url=receiver.url)
    services.notify(org=org, users=[owner], title="x", type="error")
    delivery = NotificationDelivery.objects.get(webhook=webhook)
    assert notification_delivery_send(org_id=other_org.id, delivery_id=delivery.id) == "skipped"
    assert receiver.requests == []


def test_mark_read_and_mark_all_read(org, owner, outsider, other_org):
    first, second = (services.notify(org=org, users=[owner], title=t)[0] for t in "ab")
    assert services.notification_mark_read(org=org, user=owner, notification_id=first.id).read_at
    from apps.core.exceptions import NotFoundError

    with pytest.raises(NotFoundError):
        services.notification_mark_read(org=other_org, user=outsider, notification_id=second.id)
    assert services.notification_mark_all_read(org=org, user=owner) == 1
    assert not Notification.objects.filter(read_at__isnull=True).exists()


# --- domain events --------------------------------------------------------------------------------


def test_account_status_change_notifies_owners_and_managers(org, owner, make_member, outsider):
    manager = make_member(Role.MANAGER)
    agent = make_member(Role.AGENT)
    events.account_status_changed.send(
        sender=None,
        org_id=org.id,
        account_id=7,
        from_status="online",
        to_status="offline",
        reason="heartbeat lost",
    )
    rows = Notification.objects.filter(category="account_status")
    assert sorted(rows.values_list("user_id", flat=True)) == sorted([owner.id, manager.id])
    assert rows.first().type == "warning"
    assert not rows.filter(user__in=[agent, outsider]).exists()


def test_banned_account_is_urgent_and_mailed(org, owner):
    events.account_status_changed.send(
        sender=None, org_id=org.id, account_id=7, from_status="online", to_status="banned"
    )
    assert Notification.objects.get(user=owner).type == "urgent"


def test_handoff_notifies_the_assignee_only(org, owner, make_member):
    agent = make_member(Role.AGENT)
    events.conversation_handed_off.send(
        sender=None, org_id=org.id, conversation_id=3, reason="转人工", assignee_id=agent.id
    )
    assert list(Notification.objects.values_list("user_id", "category")) == [(agent.id, "handoff")]


def test_handoff_without_assignee_notifies_managers(org, owner, make_member):
    make_member(Role.AGENT)
    events.conversation_handed_off.send(
        sender=None, org_id=org.id, conversation_id=3, reason="ai failed", assignee_id=None
    )
    assert list(Notification.objects.values_list("user_id", flat=True)) == [owner.id]


@pytest.mark.parametrize(("threshold", "kind"), [(80, "warning"), (95, "error"), (100, "urgent")])
def test_budget_threshold_notifies_owners_and_admins(
    org, owner, member, make_member, threshold, kind
):
    make_member(Role.MANAGER)
    events.budget_threshold_crossed.send(
        sender=None,
        org_id=org.id,
        budget_id=1,
        threshold=threshold,
        period="2025-01",
        used="80.00",
        limit="100.00",
    )
    rows = Notification.objects.filter(category="budget")
    assert sorted(rows.values_list("user_id", flat=True)) == sorted([owner.id, member.id])
    assert {r.type for r in rows} == {kind}


def test_alert_raised_maps_severity(org, owner):
    events.alert_raised.send(
        sender=None, org_id=org.id, alert_id=5, severity="critical", title="DB"
    )
    assert Notification.objects.get(user=owner).type == "urgent"


def test_receiver_errors_never_reach_the_sender(org, owner, monkeypatch):
    calls = []

    def boom(**kwargs):
        calls.append(kwargs["org"].id)
        raise RuntimeError("mail server on fire")

    monkeypatch.setattr(services, "notify", boom)
    # send() (not send_robust) would raise if a receiver let the error through.
    events.alert_raised.send(sender=None, org_id=org.id, alert_id=5)
    events.alert_raised.send(sender=None, org_id=999999, alert_id=5)  # unknown org: ignored
    assert calls == [org.id]  # the receiver ran (and failed) for the known org only
    assert not Notification.objects.exists()
