"""Reads of the wechat_accounts app, always scoped to one organisation."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from apps.core.exceptions import NotFoundError
from apps.orgs.models import Organization
from apps.wechat_accounts.models import (
    AccountStatusEvent,
    Contact,
    FriendRequest,
    GroupMember,
    MomentPost,
    MomentTimelineItem,
    Tag,
    WeChatAccount,
)


def account_list(*, org: Organization) -> QuerySet[WeChatAccount]:
    return WeChatAccount.objects.filter(org=org).select_related("connection", "owner")


def account_get(*, org: Organization, account_id: int) -> WeChatAccount:
    account = account_list(org=org).filter(pk=account_id).first()
    if account is None:
        raise NotFoundError(_("WeChat account not found."))
    return account


def account_status_events(*, org: Organization, account_id: int) -> QuerySet[AccountStatusEvent]:
    return AccountStatusEvent.objects.filter(org=org, account_id=account_id)


def contact_list(
    *,
    org: Organization,
    account_id: int | None = None,
    kind: str | None = None,
    tag_id: int | None = None,
    search: str | None = None,
    include_removed: bool = False,
) -> QuerySet[Contact]:
    qs = Contact.objects.filter(org=org)
    if not include_removed:
        qs = qs.filter(removed_at=None)
    if account_id:
        qs = qs.filter(account_id=account_id)
    if kind:
        qs = qs.filter(kind=kind)
    if tag_id:
        qs = qs.filter(tags__id=tag_id)
    if search:
        qs = qs.filter(
            Q(nickname__icontains=search)
            | Q(remark__icontains=search)
            | Q(wxid__icontains=search)
            | Q(alias__icontains=search)
        )
    return qs.distinct() if tag_id else qs


def tag_list(*, org: Organization) -> QuerySet[Tag]:
    return Tag.objects.filter(org=org)


def group_member_list(*, org: Organization, group_id: int) -> QuerySet[GroupMember]:
    group = Contact.objects.filter(org=org, pk=group_id, kind=Contact.Kind.GROUP).first()
    if group is None:
        raise NotFoundError(_("Group not found."))
    return GroupMember.objects.filter(org=org, group=group)


def moment_list(*, org: Organization, account_id: int | None = None) -> QuerySet[MomentPost]:
    qs = MomentPost.objects.filter(org=org).select_related("account")
    return qs.filter(account_id=account_id) if account_id else qs


def timeline_list(*, org: Organization, account_id: int) -> QuerySet[MomentTimelineItem]:
    return MomentTimelineItem.objects.filter(org=org, account_id=account_id)


def friend_request_list(*, org: Organization) -> QuerySet[FriendRequest]:
    return FriendRequest.objects.filter(org=org).select_related("account")
