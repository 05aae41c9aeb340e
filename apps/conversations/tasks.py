"""Tasks of the conversations app: thin, idempotent, taking ids."""

from __future__ import annotations

from celery import shared_task

from apps.conversations import outbound
from apps.orgs.models import Organization
from apps.wechat_accounts.models import WeChatAccount


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def ai_turn_run(*, org_id: int, conversation_id: int) -> str:
    """One AI turn of a conversation (idempotent: keyed by the last customer message)."""
    from apps.conversations.ai import ai_turn_run as run

    return run(org_id=org_id, conversation_id=conversation_id)


@shared_task(acks_late=True, soft_time_limit=1500, time_limit=1560)
def analysis_backfill_run(*, org_id: int, backfill_id: int) -> str:
    """One console-requested analysis backfill (idempotent: claimed by a conditional UPDATE).
    A long one continues in a fresh task when the soft time limit comes (backfill.py)."""
    from apps.conversations.backfill import backfill_run

    return backfill_run(org_id=org_id, backfill_id=backfill_id)


@shared_task
def core_loop_recover() -> dict:
    """Periodic: re-enqueue webhook events whose claim expired, re-queue or close AI turns left
    running past their lease, re-schedule unanswered AI turns, reopen snoozed conversations
    that are due (all organisations; each step idempotent)."""
    from apps.conversations.ai import conversations_recover_ai
    from apps.conversations.backfill import backfills_resume_stale_all_orgs
    from apps.conversations.services import conversations_wake_snoozed_all_orgs
    from apps.conversations.turn_recovery import ai_turns_recover
    from apps.integrations.webhooks import webhook_events_requeue_stuck_all_orgs

    return {
        "webhook_events": webhook_events_requeue_stuck_all_orgs(),
        "lost_turns": ai_turns_recover(),
        "ai_turns": conversations_recover_ai(),
        "snoozed": conversations_wake_snoozed_all_orgs(),
        "analysis_backfills": backfills_resume_stale_all_orgs(),
    }


@shared_task(soft_time_limit=110, time_limit=120)
def conversations_lifecycle() -> dict:
    """Periodic: AI sessions idle/expired, drafts expired, idle conversations auto-resolved
    (all organisations; idempotent)."""
    from apps.conversations.lifecycle import conversations_lifecycle_all_orgs

    return conversations_lifecycle_all_orgs()


@shared_task(acks_late=True, soft_time_limit=150, time_limit=180)
def message_media_fetch(*, org_id: int, message_id: int) -> str:
    """Download the image / voice / video / file of a received message (idempotent; retries
    itself with backoff through ``apps.conversations.media.schedule_fetch``)."""
    from apps.conversations.media import message_media_fetch as fetch

    return fetch(org_id=org_id, message_id=message_id)


@shared_task(soft_time_limit=50, time_limit=60)
def media_fetch_recover() -> int:
    """Periodic: re-enqueue received media whose download task was lost (all organisations;
    idempotent: every attempt claims the message first)."""
    from apps.conversations.media import media_fetch_recover as recover

    return recover()


# The outbound pipeline's tasks keep the names they had in apps.wechat_accounts.tasks, so tasks
# already queued (and the beat entry) still resolve.


@shared_task(
    name="apps.wechat_accounts.tasks.outbound_deliver",
    acks_late=True,
    soft_time_limit=90,
    time_limit=120,
)
def outbound_deliver(*, org_id: int, message_id: int) -> str:
    """One delivery attempt; waits are rescheduled by the service (never slept here)."""
    return outbound.outbound_deliver(org_id=org_id, message_id=message_id).outcome


@shared_task(name="apps.wechat_accounts.tasks.outbound_recover", acks_late=True)
def outbound_recover(*, org_id: int) -> dict:
    org = Organization.objects.filter(pk=org_id).first()
    if org is None:
        return {}
    return vars(outbound.outbound_recover(org=org))


@shared_task(name="apps.wechat_accounts.tasks.outbound_recover_all_orgs")
def outbound_recover_all_orgs() -> int:
    org_ids = list(
        WeChatAccount.objects.values_list("org_id", flat=True).distinct().order_by("org_id")
    )
    for org_id in org_ids:
        outbound_recover.apply_async(kwargs={"org_id": org_id}, expires=55)
    return len(org_ids)
