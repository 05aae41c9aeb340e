"""Account state machine, QR login, online checks, contact sync, CSV, friend requests, Moments."""

from __future__ import annotations

import pytest

from apps.conversations.models import Message
from apps.core import events
from apps.core.exceptions import ConflictError
from apps.wechat_accounts import services
from apps.wechat_accounts.models import (
    AccountStatusEvent,
    Contact,
    FriendRequest,
    GroupMember,
    MomentPost,
    Tag,
    WeChatAccount,
)
from apps.wechat_accounts.tasks import account_check_online, contacts_sync, moment_post

pytestmark = pytest.mark.django_db
S = WeChatAccount.Status


def test_state_machine_legal_moves_record_events_and_signal(
    account, django_capture_on_commit_callbacks
):
    received = []

    def handler(**kwargs):
        received.append((kwargs["from_status"], kwargs["to_status"], kwargs["account_id"]))

    events.account_status_changed.connect(handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            for target in [
                S.ONLINE,
                S.OFFLINE,
                S.ONLINE,
                S.RISK_CONTROLLED,
                S.BANNED,
                S.LOGGED_OUT,
            ]:
                services.account_status_change(
                    org=account.org, account_id=account.pk, to_status=target, reason="t"
                )
    finally:
        events.account_status_changed.disconnect(handler)
    moves = list(
        AccountStatusEvent.objects.filter(account=account)
        .order_by("id")
        .values_list("from_status", "to_status")
    )
    assert moves == [
        (S.PENDING_LOGIN, S.ONLINE),
        (S.ONLINE, S.OFFLINE),
        (S.OFFLINE, S.ONLINE),
        (S.ONLINE, S.RISK_CONTROLLED),
        (S.RISK_CONTROLLED, S.BANNED),
        (S.BANNED, S.LOGGED_OUT),
    ]
    assert [r[:2] for r in received] == moves


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.PENDING_LOGIN, S.OFFLINE),
        (S.BANNED, S.ONLINE),
        (S.LOGGED_OUT, S.ONLINE),
        (S.PENDING_LOGIN, S.BANNED),
    ],
)
def test_state_machine_rejects_illegal_moves(account, start, target):
    WeChatAccount.objects.filter(pk=account.pk).update(status=start)
    with pytest.raises(ConflictError):
        services.account_status_change(org=account.org, account_id=account.pk, to_status=target)
    account.refresh_from_db()
    assert account.status == start
    assert not AccountStatusEvent.objects.filter(account=account).exists()


def test_status_change_of_another_org_is_not_found(account, other_org):
    from apps.core.exceptions import NotFoundError

    with pytest.raises(NotFoundError):
        services.account_status_change(org=other_org, account_id=account.pk, to_status=S.ONLINE)


def test_qr_login_end_to_end_with_expiry_reuses_the_device(account, gewe):
    gewe.login_delay = 3600  # the phone does not confirm by itself
    gewe.qr_ttl = 1  # the QR expires quickly
    info = services.account_login_start(org=account.org, account_id=account.pk)
    assert info.qr_image.startswith("data:image/") and info.uuid
    account.refresh_from_db()
    device = account.device_id
    assert device.startswith("wx_") and account.status == S.PENDING_LOGIN
    # Expired (or about to): the poll asks for a new QR with the same device id.
    state = services.account_login_poll(org_id=account.org_id, account_id=account.pk)
    assert state == "expired"
    account.refresh_from_db()
    assert account.device_id == device and account.login_uuid != info.uuid
    assert len(gewe.devices) == 1
    gewe.qr_ttl = 120
    services.account_login_poll(org_id=account.org_id, account_id=account.pk)  # fresh QR
    gewe.confirm_login(device)
    status = services.account_login_status(org=account.org, account_id=account.pk)
    assert status["status"] == S.ONLINE
    account.refresh_from_db()
    assert account.wxid == gewe.account_wxid and account.nickname == gewe.account_nickname
    assert account.avatar_url
    assert gewe.callback_url == account.connection.webhook_url
    assert account.contacts_sync_state == WeChatAccount.SyncState.RUNNING
    assert len(gewe.devices) == 1
    # Logout, then a second login reuses the same device.
    services.account_logout(org=account.org, account_id=account.pk)
    services.account_login_start(org=account.org, account_id=account.pk)
    account.refresh_from_db()
    assert account.device_id == device and len(gewe.devices) == 1


def test_online_check_moves_status_and_task_is_org_scoped(online_account, gewe, other_org):
    gewe.set_offline(online_account.device_id, notify=False)
    assert account_check_online(org_id=other_org.pk, account_id=online_account.pk) == "missing"
    online_account.refresh_from_db()
    assert online_account.status == S.ONLINE
    assert account_check_online(org_id=online_account.org_id, account_id=online_account.pk) == (
        S.OFFLINE
    )
    # Running it again is harmless.
    assert account_check_online(org_id=online_account.org_id, account_id=online_account.pk) == (
        S.OFFLINE
    )


def test_online_checks_are_spread_over_the_interval(org, connection, monkeypatch):
    from apps.wechat_accounts import tasks

    for i in range(4):
        a = services.account_create(org=org, connection=connection, name=f"A{i}")
        WeChatAccount.objects.filter(pk=a.pk).update(status=S.ONLINE, device_id=f"wx_{i}")
    calls = []
    monkeypatch.setattr(
        tasks.account_check_online, "apply_async", lambda **kw: calls.append(kw["countdown"])
    )
    assert services.accounts_check_online_schedule(org=org, interval=300) == 4
    assert calls == [0, 75, 150, 225]


def test_contact_sync_of_2000_contacts_with_progress(
    online_account, gewe, monkeypatch, django_capture_on_commit_callbacks
):
    gewe.generate_contacts(friends=2000, groups=3, members=5)
    gewe.labels[1] = "VIP"
    gewe.friends["wxid_cust0007"]["labelList"] = "1"
    progress = []
    from apps.core import realtime

    monkeypatch.setattr(
        realtime,
        "push_on_commit",
        lambda event, data, groups: progress.append((event, data["contacts_sync"]["done"])),
    )
    from apps.core import events

    applied = []

    def on_tag_applied(sender, *, org_id, contact_id, tag_id, **kwargs):
        applied.append((org_id, contact_id, tag_id))

    events.tag_applied.connect(on_tag_applied, dispatch_uid="test-sync-tag-applied")
    WeChatAccount.objects.filter(pk=online_account.pk).update(contacts_sync_state="running")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert contacts_sync(org_id=online_account.org_id, account_id=online_account.pk) == (
                2004
            )
    finally:
        events.tag_applied.disconnect(dispatch_uid="test-sync-tag-applied")
    online_account.refresh_from_db()
    assert online_account.contacts_sync_state == WeChatAccount.SyncState.DONE
    assert online_account.contacts_sync_done == online_account.contacts_sync_total == 2004
    assert Contact.objects.filter(account=online_account, kind="friend").count() == 2000
    assert Contact.objects.filter(account=online_account, kind="group").count() == 3
    assert Contact.objects.filter(account=online_account, kind="official").count() == 1
    assert Contact.objects.get(account=online_account, wxid="wxid_cust0042").nickname == "客户0042"
    done = [d for e, d in progress if e == "contact_sync_progress"]
    assert done[:3] == [0, 100, 200] and done[-1] == 2004
    assert Tag.objects.get(org=online_account.org, name="VIP").contacts.get().wxid == (
        "wxid_cust0007"
    )
    assert GroupMember.objects.filter(group__account=online_account).count() == 3 * 6
    vip = Tag.objects.get(org=online_account.org, name="VIP")
    assert applied == [(online_account.org_id, vip.contacts.get().pk, vip.pk)]
    # A second sync is an upsert, and marks vanished contacts removed.
    del gewe.friends["wxid_cust0001"]
    contacts_sync(org_id=online_account.org_id, account_id=online_account.pk)
    assert Contact.objects.filter(account=online_account).count() == 2004
    assert Contact.objects.get(account=online_account, wxid="wxid_cust0001").removed_at


def test_contact_upsert_only_writes_given_fields(account):
    c = services.contact_upsert(org=account.org, account=account, wxid="wxid_x", nickname="A")
    services.contact_upsert(org=account.org, account=account, wxid="wxid_x", remark="R")
    c.refresh_from_db()
    assert (c.nickname, c.remark, c.kind) == ("A", "R", "friend")
    g = services.contact_upsert(org=account.org, account=account, wxid="123@chatroom")
    assert g.kind == "group"


def test_contacts_csv_round_trip(account, other_org):
    c = services.contact_upsert(org=account.org, account=account, wxid="wxid_a", nickname="Ann")
    c.tags.add(services.tag_create(org=account.org, name="VIP"))
    data = services.contacts_export_csv(queryset=Contact.objects.filter(org=account.org))
    assert "wxid_a" in data and "VIP" in data
    Contact.objects.all().delete()
    result = services.contacts_import_csv(
        org=account.org, data=data + f"{account.name},,friend,,,,,,,\nNope,wxid_z,,,,,,,,\n"
    )
    assert (result.created, result.updated, len(result.errors)) == (1, 0, 2)
    imported = Contact.objects.get(account=account, wxid="wxid_a")
    assert imported.nickname == "Ann" and [t.name for t in imported.tags.all()] == ["VIP"]
    # Another organisation cannot import into this account (its name is unknown there).
    other = services.contacts_import_csv(org=other_org, data=data)
    assert other.created == 0 and len(other.errors) == 1


def test_tags_csv_import(org):
    result = services.tags_import_csv(org=org, data="name,color\nHot,#ff0000\nBad,red\n")
    assert result.created == 1 and len(result.errors) == 1
    assert Tag.objects.get(org=org, name="Hot").color == "#ff0000"


def test_friend_request_auto_accept_sends_welcome_through_pipeline(
    online_account, gewe, django_capture_on_commit_callbacks
):
    services.account_update(
        org=online_account.org,
        account_id=online_account.pk,
        auto_accept_friends=True,
        welcome_message="欢迎!",
    )
    online_account.refresh_from_db()
    gewe.pending_friend_requests.append(
        {"v3": "v3_abc@stranger", "wxid": "wxid_new", "nickname": "N"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        request = services.friend_request_record(
            org=online_account.org,
            account=online_account,
            v3="v3_abc@stranger",
            v4="v4_x@stranger",
            scene=6,
            from_wxid="wxid_new",
            nickname="N",
        )
    request.refresh_from_db()
    assert request.status == FriendRequest.Status.ACCEPTED
    assert gewe.contact_requests[0]["option"] == 3
    assert Contact.objects.get(account=online_account, wxid="wxid_new").source == "friend_request"
    welcome = Message.objects.get(account=online_account, to_wxid="wxid_new")
    assert welcome.text == "欢迎!" and welcome.status == Message.Status.SENT
    assert [s["body"]["content"] for s in gewe.sent] == ["欢迎!"]
    # Recording the same request again changes nothing.
    again = services.friend_request_record(
        org=online_account.org, account=online_account, v3="v3_abc@stranger"
    )
    assert again.pk == request.pk


def test_moment_post_now_and_timeline(online_account, gewe, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post = services.moment_create(org=online_account.org, account=online_account, text="新品")
    post.refresh_from_db()
    assert post.status == MomentPost.Status.POSTED and post.platform_id
    assert moment_post(org_id=online_account.org_id, moment_id=post.pk) == "skipped"
    assert (
        services.moments_timeline_refresh(org=online_account.org, account_id=online_account.pk) == 1
    )
    # Cached: a second refresh within the TTL does not call the platform.
    assert (
        services.moments_timeline_refresh(org=online_account.org, account_id=online_account.pk) == 0
    )


def test_scheduled_moment_waits_until_due(online_account, gewe, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=True):
        post = services.moment_create(
            org=online_account.org,
            account=online_account,
            text="later",
            scheduled_at=timezone.now() + timedelta(hours=1),
        )
    assert services.moments_post_due(org=online_account.org) == 0
    MomentPost.objects.filter(pk=post.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    assert services.moments_post_due(org=online_account.org) == 1
    post.refresh_from_db()
    assert post.status == MomentPost.Status.POSTED
