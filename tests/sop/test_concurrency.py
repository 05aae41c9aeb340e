"""Two ticks at once, each in its own thread with its own PostgreSQL connection: every
delivery is claimed by exactly one of them and sent exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from apps.conversations import outbound
from apps.conversations.models import Message
from apps.sop import services
from apps.sop.models import SopDelivery
from apps.wechat_accounts.models import WeChatAccount
from tests.conftest import requires_postgres
from tests.sop.conftest import make_contact, make_plan

CONTACTS = 24


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ticks_send_each_delivery_once(org, account, gewe):
    WeChatAccount.objects.filter(pk=account.pk).update(send_limit_per_minute=1000)
    for i in range(CONTACTS):
        make_contact(account, f"wxid_conc{i:02d}")
    plan = make_plan(
        org,
        [account],
        steps=[{"kind": "text", "text": "one {nickname}"}, {"kind": "text", "text": "two"}],
    )
    services.plan_activate(org=org, plan_id=plan.pk)
    barrier = threading.Barrier(2)
    claimed: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            idle = 0
            while idle < 2:
                token, ids = services.claim_due(org_id=org.pk, limit=4)
                claimed[index].extend(ids)
                for delivery_id in ids:
                    services.process_delivery(delivery_id=delivery_id, token=token)
                idle = idle + 1 if not ids else 0
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert claimed[0] and claimed[1], "both ticks should have claimed work"
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == CONTACTS * 2
    messages = Message.objects.filter(org=org, sender_kind="sop")
    assert messages.count() == CONTACTS * 2
    assert messages.values("client_msg_id").distinct().count() == CONTACTS * 2
    # Deliver whatever the pipeline has not delivered yet (idempotent: a message that was sent
    # in the threads is skipped), so the test does not depend on Celery running eagerly.
    for message_id in messages.order_by("id").values_list("id", flat=True):
        outbound.outbound_deliver(org_id=org.pk, message_id=message_id)
    services.sop_tick(org_id=org.pk)  # mirror the pipeline's states
    assert SopDelivery.objects.filter(plan=plan, status="sent").count() == CONTACTS * 2
    assert Message.objects.filter(org=org, sender_kind="sop").count() == CONTACTS * 2
    per_contact = Counter(s["to"] for s in gewe.sent)
    assert len(per_contact) == CONTACTS and set(per_contact.values()) == {2}
