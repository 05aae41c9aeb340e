"""Admin pages of the wechat_accounts app, including organisation scoping for staff."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.orgs.models import Role
from apps.wechat_accounts import services

pytestmark = pytest.mark.django_db


def _staff_client(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_changelists_render_with_badges_and_sends(online_account, member):
    services.contact_upsert(org=online_account.org, account=online_account, wxid="wxid_a")
    client = _staff_client(member)
    response = client.get("/admin/wechat_accounts/wechataccount/")
    assert response.status_code == 200
    body = response.content.decode()
    assert online_account.name in body and "0 / 1000" in body and "border-radius" in body
    for model in ["contact", "tag", "momentpost", "friendrequest", "accountstatusevent"]:
        assert client.get(f"/admin/wechat_accounts/{model}/").status_code == 200, model


def test_admin_login_page_shows_the_qr_and_is_org_scoped(account, member, make_member, other_org):
    client = _staff_client(member)
    response = client.get(f"/admin/wechat_accounts/wechataccount/{account.pk}/login/")
    assert response.status_code == 200
    assert 'src="data:image/' in response.content.decode()
    outsider = _staff_client(make_member(Role.OWNER, organization=other_org))
    response = outsider.get(f"/admin/wechat_accounts/wechataccount/{account.pk}/login/")
    assert response.status_code == 404
    assert (
        account.name not in outsider.get("/admin/wechat_accounts/wechataccount/").content.decode()
    )


def test_admin_check_online_action(online_account, member):
    client = _staff_client(member)
    response = client.post(
        "/admin/wechat_accounts/wechataccount/",
        {"action": "action_check_online", "_selected_action": [online_account.pk]},
        follow=True,
    )
    assert response.status_code == 200 and "checked" in response.content.decode()
