"""Queries per inbound message through the whole loop (issue 19): webhook, processing, AI turn,
send and live push. Bounded, and the same whatever the conversation's history: no N+1 and
nothing that grows with earlier messages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.conversations.models import Conversation, Message
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db

CUSTOMER = "wxid_query_counter"
_SAVEPOINT = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b")
# Measured 66 on 2026-12-04 (webhook insert and claim 4, processing 10, AI turn with failover
# list, reservation and settlement 30, the reply's insert and send 15, platform metering 7).
# Metering folded on 2026-12-04: 52 on PostgreSQL (reserve 1 statement, settle 1, platform
# metering 1; budgets and prices come from the per-process config cache). SQLite has no
# data-modifying CTEs, so the ledger row and its two aggregates are separate statements there
# (+5). Crash healing then added 3 on PostgreSQL (the event's committed claim, the chat's
# advisory lock, the AI turn's lease) and 2 on SQLite: 55 and 59.
# Send part folded on 2026-12-05 (h/sendq), from the send task loading the reply to the kick:
# 11 -> 5 on PostgreSQL (the message with its per-contact order check, the claim, the call's
# start mark just before the platform call, sent + ledger + sums + the call log row in one
# statement, the contact's next queued message; last_seen_at is written at most once a
# minute): 49. SQLite 59 -> 55.
# Webhook processing and the AI turn folded on 2026-12-05 (h/turnq): 34 on PostgreSQL, 38 on
# SQLite. PostgreSQL, in order: receive 2 (connection, event insert); processing 9 (claim, chat
# lock, the event and its chat's older events in one locking select, account, contact, the
# conversation found and locked in one select, message insert, conversation update, event
# done); AI turn 12 (the pending messages with their conversation joined, the turn inserted with
# its attempt, lease and app, history, reserve, integration call, settle, session UPDATE,
# conversation lock, the reply inserted with its AI fields, conversation update with
# last_message_at, turn done, the after-turn check in one select; the reply app lists come from
# a per-process cache); send 11.
# Both merged on 2026-12-05: 28 on PostgreSQL (receive 2, processing 9, AI turn 12, send 5),
# 34 on SQLite. Issue 19's goal of 30 is met on PostgreSQL.
MAX_QUERIES_PER_MESSAGE = {"postgresql": 28, "sqlite": 34}


def _history(conversation: Conversation, count: int) -> None:
    start = timezone.now() - timedelta(days=30)
    Message.objects.bulk_create(
        [
            Message(
                org_id=conversation.org_id,
                conversation=conversation,
                direction=Message.Direction.INBOUND if i % 2 else Message.Direction.OUTBOUND,
                sender_kind=Message.SenderKind.CUSTOMER if i % 2 else Message.SenderKind.AI,
                kind=Message.Kind.TEXT,
                text=f"earlier message {i}",
                status=Message.Status.RECEIVED if i % 2 else Message.Status.SENT,
                created_at=start + timedelta(seconds=i),
            )
            for i in range(count)
        ],
        batch_size=2000,
    )


def _one_message(account, gewe, capture, body: str) -> int:
    payload = gewe.build_text(from_wxid=CUSTOMER, text=body, to_account=account.device_id)
    sent_before = len(gewe.sent)
    with CaptureQueriesContext(connection) as queries:
        deliver(account.connection, payload, capture)
    assert len(gewe.sent) == sent_before + 1, "the AI answered and the answer was sent"
    # The test runs in a transaction, so every atomic block shows as SAVEPOINT/RELEASE; in
    # production those are BEGIN/COMMIT on the connection and no statement. Count the real ones.
    real = [q["sql"] for q in queries.captured_queries if not _SAVEPOINT.match(q["sql"])]
    return len(real)


def test_queries_per_message_are_bounded_and_do_not_grow_with_history(
    account, reply_app, gewe, django_capture_on_commit_callbacks, settings
):
    # Look the connection up on every webhook (the 10 s per-process cache would otherwise
    # expire while 10,000 rows are inserted and count one query more for that step only).
    settings.WEBHOOK_CONNECTION_CACHE_SECONDS = 0
    # The first message creates the contact and the conversation; measure the ones after it.
    _one_message(account, gewe, django_capture_on_commit_callbacks, "first")
    conversation = Conversation.objects.get()
    counts = {}
    added = 0
    for history in (0, 100, 10_000):
        _history(conversation, history - added)
        added = history
        counts[history] = _one_message(
            account, gewe, django_capture_on_commit_callbacks, f"after {history}"
        )
    assert Message.objects.filter(conversation=conversation).count() >= 10_000
    assert counts[0] <= MAX_QUERIES_PER_MESSAGE[connection.vendor], counts
    assert counts[0] == counts[100] == counts[10_000], counts
