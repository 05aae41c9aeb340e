"""The WeChat accounts API, including cross-organisation isolation of every endpoint."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.conversations.models import Message
from apps.orgs.models import Role
from apps.wechat_accounts import services
from apps.wechat_accounts.models import Contact, FriendRequest, MomentPost, WeChatAccount
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
BASE = "/api/v1/wechat-accounts/"


def test_create_login_and_status_flow(api_client, connection, gewe):
    response = api_client.post(
        BASE, {"connection": connection.pk, "name": "Phone A"}, format="json"
    )
    assert response.status_code == 201, response.json()
    account_id = response.json()["id"]
    assert response.json()["status"] == "pending_login"
    response = api_client.post(f"{BASE}{account_id}/login/")
    assert response.status_code == 200
    body = response.json()
    assert body["qr_image"].startswith("data:image/") and body["uuid"]
    device = WeChatAccount.objects.get(pk=account_id).device_id
    gewe.confirm_login(device)
    response = api_client.get(f"{BASE}{account_id}/login/status/")
    assert response.status_code == 200
    assert response.json()["status"] == "online"
    assert response.json()["wxid"] == gewe.account_wxid


def test_create_rejects_connection_of_another_org(api_client, other_org, simulators_clean):
    from tests.wechat_accounts.conftest import make_connection

    foreign = make_connection(other_org, simulators_clean)
    response = api_client.post(BASE, {"connection": foreign.pk, "name": "X"}, format="json")
    assert response.status_code == 400
    assert "connection" in response.json()["error"]["fields"]


def test_send_endpoint_answers_202_and_validates(
    api_client, online_account, gewe, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            f"{BASE}{online_account.pk}/messages/",
            {"to": "wxid_cust0001", "kind": "text", "text": "hi"},
            format="json",
        )
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued"
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "sent" and message.sender_kind == "agent"
    response = api_client.post(
        f"{BASE}{online_account.pk}/messages/", {"to": "wxid_a", "kind": "image"}, format="json"
    )
    assert response.status_code == 400
    assert "url" in response.json()["error"]["fields"]
    response = api_client.post(
        f"{BASE}{online_account.pk}/messages/", {"to": "wxid_a", "kind": "voice"}, format="json"
    )
    assert response.status_code == 400


def test_viewer_cannot_send_or_create(online_account, make_member, org):
    viewer = client_for(make_member(Role.VIEWER), org)
    response = viewer.post(
        f"{BASE}{online_account.pk}/messages/", {"to": "w", "text": "x"}, format="json"
    )
    assert response.status_code == 403
    assert viewer.get(BASE).status_code == 200


def test_account_actions(api_client, online_account, gewe):
    url = f"{BASE}{online_account.pk}/"
    assert api_client.post(url + "check-online/").json() == {"status": "online"}
    response = api_client.post(url + "sync-contacts/")
    assert response.status_code == 202
    assert api_client.get(url + "status-events/").json()["count"] >= 1
    response = api_client.post(url + "logout/")
    assert response.status_code == 200 and response.json()["status"] == "logged_out"
    response = api_client.post(url + "reconnect/")
    assert response.status_code == 409  # logged out: a QR login is needed
    response = api_client.patch(url, {"send_limit_per_minute": 20}, format="json")
    assert response.status_code == 200 and response.json()["send_limit_per_minute"] == 20
    response = api_client.patch(
        url, {"delay_min_seconds": 5, "delay_max_seconds": 1}, format="json"
    )
    assert response.status_code == 400


def test_account_list_query_count(api_client, org, connection, django_assert_max_num_queries):
    for i in range(5):
        services.account_create(org=org, connection=connection, name=f"P{i}")
    with django_assert_max_num_queries(8):
        response = api_client.get(BASE)
    assert response.json()["count"] == 5


def test_contacts_filters_export_import(api_client, online_account):
    vip = services.tag_create(org=online_account.org, name="VIP")
    a = services.contact_upsert(
        org=online_account.org, account=online_account, wxid="wxid_ann", nickname="Ann"
    )
    a.tags.add(vip)
    services.contact_upsert(org=online_account.org, account=online_account, wxid="9@chatroom")
    assert api_client.get("/api/v1/contacts/").json()["count"] == 2
    assert api_client.get("/api/v1/contacts/?kind=group").json()["count"] == 1
    assert api_client.get(f"/api/v1/contacts/?tag={vip.pk}").json()["count"] == 1
    assert api_client.get("/api/v1/contacts/?search=ann").json()["count"] == 1
    assert api_client.get(f"/api/v1/contacts/?account={online_account.pk}").json()["count"] == 2
    assert api_client.get("/api/v1/contacts/?account=x").status_code == 400
    response = api_client.patch(
        f"/api/v1/contacts/{a.pk}/", {"remark": "Boss", "tags": []}, format="json"
    )
    assert response.status_code == 200 and response.json()["tags"] == []
    export = api_client.get("/api/v1/contacts/export/")
    assert export.status_code == 200 and "wxid_ann" in export.content.decode("utf-8-sig")
    upload = SimpleUploadedFile(
        "c.csv", b"account,wxid,nickname,tags\n,wxid_new,New,Hot\n", content_type="text/csv"
    )
    response = api_client.post(
        "/api/v1/contacts/import/",
        {"file": upload, "account": online_account.pk},
        format="multipart",
    )
    assert response.status_code == 200 and response.json()["created"] == 1


def test_tags_crud_and_csv(api_client):
    response = api_client.post("/api/v1/tags/", {"name": "Hot", "color": "#ff0000"}, format="json")
    assert response.status_code == 201
    assert api_client.post("/api/v1/tags/", {"name": "Hot"}, format="json").status_code == 400
    assert (
        api_client.post("/api/v1/tags/", {"name": "B", "color": "red"}, format="json").status_code
        == 400
    )
    assert "Hot" in api_client.get("/api/v1/tags/export/").content.decode("utf-8-sig")
    tag_id = response.json()["id"]
    assert api_client.delete(f"/api/v1/tags/{tag_id}/").status_code == 204


def test_group_members_and_moments(
    api_client, online_account, gewe, django_capture_on_commit_callbacks
):
    gewe.generate_contacts(friends=3, groups=1, members=3)
    services.contacts_sync(org_id=online_account.org_id, account_id=online_account.pk)
    group = Contact.objects.get(account=online_account, kind="group")
    response = api_client.get(f"/api/v1/groups/{group.pk}/members/")
    assert response.status_code == 200 and response.json()["count"] == 4
    friend = Contact.objects.filter(account=online_account, kind="friend").first()
    assert api_client.get(f"/api/v1/groups/{friend.pk}/members/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/v1/moments/", {"account": online_account.pk, "text": "hello"}, format="json"
        )
    assert response.status_code == 201, response.json()
    assert MomentPost.objects.get(pk=response.json()["id"]).status == "posted"
    assert (
        api_client.post(
            "/api/v1/moments/", {"account": online_account.pk}, format="json"
        ).status_code
        == 400
    )
    response = api_client.get(f"/api/v1/moments/timeline/?account={online_account.pk}")
    assert response.status_code == 200 and response.json()["count"] == 1


def test_every_endpoint_hides_another_orgs_objects(
    online_account, outsider, other_org, gewe, django_capture_on_commit_callbacks
):
    contact = services.contact_upsert(
        org=online_account.org, account=online_account, wxid="9@chatroom"
    )
    tag = services.tag_create(org=online_account.org, name="Mine")
    with django_capture_on_commit_callbacks(execute=True):
        moment = services.moment_create(org=online_account.org, account=online_account, text="m")
    request = services.friend_request_record(
        org=online_account.org, account=online_account, v3="v3_q"
    )
    rival = client_for(outsider, other_org)
    a = f"{BASE}{online_account.pk}/"
    gets = [
        a,
        a + "login/status/",
        a + "status-events/",
        f"/api/v1/contacts/{contact.pk}/",
        f"/api/v1/groups/{contact.pk}/members/",
        f"/api/v1/tags/{tag.pk}/",
        f"/api/v1/moments/{moment.pk}/",
        f"/api/v1/friend-requests/{request.pk}/",
        f"/api/v1/moments/timeline/?account={online_account.pk}",
    ]
    for url in gets:
        assert rival.get(url).status_code == 404, url
    posts = [
        a + "login/",
        a + "logout/",
        a + "reconnect/",
        a + "confirm-login/",
        a + "sync-contacts/",
        a + "check-online/",
        f"/api/v1/friend-requests/{request.pk}/accept/",
        f"/api/v1/friend-requests/{request.pk}/reject/",
        f"/api/v1/moments/{moment.pk}/cancel/",
    ]
    for url in posts:
        assert rival.post(url).status_code == 404, url
    assert rival.post(a + "messages/", {"to": "w", "text": "x"}, format="json").status_code == 404
    assert rival.patch(a, {"name": "stolen"}, format="json").status_code == 404
    assert rival.delete(a).status_code == 404
    assert (
        rival.patch(f"/api/v1/contacts/{contact.pk}/", {"remark": "x"}, format="json").status_code
        == 404
    )
    assert rival.delete(f"/api/v1/tags/{tag.pk}/").status_code == 404
    for url in [
        "/api/v1/contacts/",
        "/api/v1/tags/",
        "/api/v1/moments/",
        "/api/v1/friend-requests/",
        BASE,
    ]:
        assert rival.get(url).json()["count"] == 0, url
    assert "9@chatroom" not in rival.get("/api/v1/contacts/export/").content.decode("utf-8-sig")
    response = rival.post(
        "/api/v1/moments/", {"account": online_account.pk, "text": "x"}, format="json"
    )
    assert response.status_code == 400
    upload = SimpleUploadedFile("c.csv", b"wxid\nwxid_z\n", content_type="text/csv")
    response = rival.post(
        "/api/v1/contacts/import/",
        {"file": upload, "account": online_account.pk},
        format="multipart",
    )
    assert response.status_code == 404
    assert FriendRequest.objects.get(pk=request.pk).status == "pending"
    assert WeChatAccount.objects.get(pk=online_account.pk).name == online_account.name
    assert gewe.sent == []
