"""Friend requests: record, accept, reject."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import events
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.integrations import platform_data as pd
from apps.integrations.clients import errors as client_errors
from apps.orgs.models import Organization
from apps.wechat_accounts.models import (
    Contact,
    FriendRequest,
    WeChatAccount,
)
from apps.wechat_accounts.platform import client_for_account
from apps.wechat_accounts.services._common import _platform_error, _save
from apps.wechat_accounts.services.contacts import contact_upsert

# -- friend requests -----------------------------------------------------------------------


@transaction.atomic
def friend_request_record(
    *,
    org: Organization | int,
    account: WeChatAccount,
    v3: str,
    v4: str = "",
    scene: int = 0,
    from_wxid: str = "",
    nickname: str = "",
    content: str = "",
) -> FriendRequest:
    """Store an incoming friend request (idempotent on the ticket); accepted automatically
    after commit when the account says so."""
    org_id = getattr(org, "pk", org)
    if account.org_id != org_id:
        raise NotFoundError(_("WeChat account not found."))
    # Platform data is data: descriptive fields are cut or dropped; only the ticket matters.
    ticket = pd.text(v3, 300, field="friend_request.v3")
    if not ticket:
        raise ApplicationError(_("Invalid data."), fields={"v3": [_("This field is required.")]})
    request, created = FriendRequest.objects.get_or_create(
        account=account,
        v3=ticket,
        defaults={
            "org_id": org_id,
            "v4": pd.text(v4, 300, field="friend_request.v4"),
            "scene": pd.small_int(scene, field="friend_request.scene", high=2**31 - 1) or 0,
            "from_wxid": pd.ident(from_wxid, 128, field="friend_request.from_wxid"),
            "nickname": pd.text(nickname, 200, field="friend_request.nickname"),
            "content": pd.text(content, 500, field="friend_request.content"),
        },
    )
    if created and account.auto_accept_friends:
        from apps.wechat_accounts.tasks import friend_request_accept as accept_task

        request_id = request.pk
        transaction.on_commit(lambda: accept_task.delay(org_id=org_id, request_id=request_id))
    return request


def friend_request_accept(*, org: Organization | int, request_id: int, user=None) -> FriendRequest:
    """Accept at the platform and add the contact. After commit it sends
    ``apps.core.events.friend_request_accepted``; the conversations app answers it with the
    account's welcome message."""
    org_id = getattr(org, "pk", org)
    request = (
        FriendRequest.objects.select_related("account", "account__org", "account__connection")
        .filter(org_id=org_id, pk=request_id)
        .first()
    )
    if request is None:
        raise NotFoundError(_("Friend request not found."))
    if request.status == FriendRequest.Status.ACCEPTED:
        return request
    claimed = FriendRequest.objects.filter(
        pk=request.pk, status__in=[FriendRequest.Status.PENDING, FriendRequest.Status.FAILED]
    ).update(
        status=FriendRequest.Status.ACCEPTED,
        handled_at=timezone.now(),
        handled_by=user,
        updated_at=timezone.now(),
    )
    if not claimed:
        request.refresh_from_db()
        return request
    account = request.account
    try:
        client_for_account(account).accept_friend(
            account.device_id, v3=request.v3, v4=request.v4, scene=request.scene
        )
    except client_errors.IntegrationError as exc:
        FriendRequest.objects.filter(pk=request.pk).update(
            status=FriendRequest.Status.FAILED, error=str(exc)[:300]
        )
        raise _platform_error(exc) from exc
    with transaction.atomic():
        if request.from_wxid:
            contact_upsert(
                org=org_id,
                account=account,
                wxid=request.from_wxid,
                kind=Contact.Kind.FRIEND,
                nickname=request.nickname or None,
                source="friend_request",
                added_at=timezone.now(),
            )
            transaction.on_commit(
                lambda: events.friend_request_accepted.send(
                    sender=FriendRequest,
                    org_id=org_id,
                    account_id=account.pk,
                    request_id=request.pk,
                    wxid=request.from_wxid,
                )
            )
    request.refresh_from_db()
    return request


@transaction.atomic
def friend_request_reject(*, org: Organization, request_id: int, user=None) -> FriendRequest:
    request = FriendRequest.objects.select_for_update().filter(org=org, pk=request_id).first()
    if request is None:
        raise NotFoundError(_("Friend request not found."))
    if request.status != FriendRequest.Status.PENDING:
        raise ConflictError(_("This request was already handled."))
    request.status = FriendRequest.Status.REJECTED
    request.handled_at = timezone.now()
    request.handled_by = user
    _save(request, ["status", "handled_at", "handled_by"])
    return request
