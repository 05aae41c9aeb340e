"""Celery tasks of the wechat_accounts app: thin, idempotent, taking ids."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.orgs.models import Organization
from apps.wechat_accounts import services
from apps.wechat_accounts.models import MomentPost, WeChatAccount

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def account_login_poll(*, org_id: int, account_id: int) -> str:
    """Poll a pending QR login every WECHAT_LOGIN_POLL_SECONDS until it ends."""
    state = services.account_login_poll(org_id=org_id, account_id=account_id)
    if state in ("waiting", "scanned", "expired"):
        account_login_poll.apply_async(
            kwargs={"org_id": org_id, "account_id": account_id},
            countdown=settings.WECHAT_LOGIN_POLL_SECONDS,
        )
    return state


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def account_check_online(*, org_id: int, account_id: int) -> str:
    if not WeChatAccount.objects.filter(org_id=org_id, pk=account_id).exists():
        return "missing"
    return services.account_check_online(org_id=org_id, account_id=account_id)


@shared_task
def accounts_check_online_org(*, org_id: int) -> int:
    org = Organization.objects.filter(pk=org_id).first()
    return services.accounts_check_online_schedule(org=org) if org else 0


@shared_task
def accounts_check_online_all_orgs() -> int:
    org_ids = list(
        WeChatAccount.objects.filter(
            status__in=[
                WeChatAccount.Status.ONLINE,
                WeChatAccount.Status.OFFLINE,
                WeChatAccount.Status.RISK_CONTROLLED,
            ]
        )
        .values_list("org_id", flat=True)
        .distinct()
        .order_by("org_id")
    )
    for org_id in org_ids:
        accounts_check_online_org.apply_async(kwargs={"org_id": org_id}, expires=60)
    return len(org_ids)


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def contacts_sync(*, org_id: int, account_id: int) -> int:
    if not WeChatAccount.objects.filter(org_id=org_id, pk=account_id).exists():
        return 0
    return services.contacts_sync(org_id=org_id, account_id=account_id).total


@shared_task(acks_late=True)
def friend_request_accept(*, org_id: int, request_id: int) -> str:
    return services.friend_request_accept(org=org_id, request_id=request_id).status


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def moment_post(*, org_id: int, moment_id: int) -> str:
    return services.moment_post(org_id=org_id, moment_id=moment_id)


@shared_task
def moments_post_due_all_orgs() -> int:
    org_ids = list(
        MomentPost.objects.filter(status=MomentPost.Status.SCHEDULED)
        .values_list("org_id", flat=True)
        .distinct()
        .order_by("org_id")
    )
    for org_id in org_ids:
        org = Organization.objects.filter(pk=org_id).first()
        if org is not None:
            services.moments_post_due(org=org)
    return len(org_ids)
