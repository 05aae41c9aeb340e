"""Tasks of the integrations app (thin: each calls one service)."""

from __future__ import annotations

import random

from celery import shared_task


@shared_task(time_limit=600, soft_time_limit=540)
def integration_call_prune() -> int:
    """Daily: delete call-log rows past ``INTEGRATION_CALL_RETENTION_DAYS`` (idempotent)."""
    from apps.integrations import services

    return services.integration_call_prune()


@shared_task(time_limit=300, soft_time_limit=240)
def connection_test(*, org_id: int, connection_id: int) -> bool | None:
    """Check one connection live and store its status; a missing row is a no-op."""
    from apps.integrations import services
    from apps.orgs.models import Organization

    org = Organization.objects.filter(id=org_id).first()
    if org is None:
        return None
    try:
        return services.connection_test(org=org, connection_id=connection_id).ok
    except services.NotFoundError:
        return None


# -- webhook inbox (core loop; apps/integrations/webhooks.py) ---------------------------------


@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90, max_retries=4)
def webhook_event_process(self, *, event_id: int) -> str:
    """Parse one stored webhook event into rows (idempotent: a processed event is skipped).

    A deadlock or serialization failure rolled the whole attempt back; PostgreSQL expects the
    transaction to be retried, so it is, within a second instead of at the next recovery sweep
    (the attempt is counted either way, and the event gives up after WEBHOOK_MAX_ATTEMPTS)."""
    from django.db import OperationalError

    from apps.integrations import webhooks

    try:
        return webhooks.webhook_event_process(event_id=event_id)
    except OperationalError as exc:
        if self.request.retries >= self.max_retries:
            raise  # the expired claim hands it to the sweep
        countdown = random.uniform(0.1, 0.5) * (2**self.request.retries)
        # The retry is due in ``countdown``: the claim lasts until then, so the sweep leaves
        # the event to it, and takes it over only if the retry is lost with a killed worker.
        try:
            webhooks.webhook_event_release(event_id=event_id, countdown=countdown)
        except OperationalError:
            # The database is out of reach (refused connection, "too many clients"): retry all
            # the same. Without the release, a claim taken before the error keeps the event
            # until its lease expires (the retry then skips it and the sweep takes it up); with
            # none taken, the retry claims it. Raising here instead lost the retry, leaving an
            # unclaimed event to the sweep after the broker's visibility timeout (half an hour).
            pass
        raise self.retry(exc=exc, countdown=countdown) from exc
