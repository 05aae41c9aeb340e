"""The core loop's lock order: webhook processing, the AI turn and the outbound pipeline take
row locks in this one order, so two of them can wait for each other but never deadlock.

A transaction takes locks only downwards in this list (skipping any it does not need) and
never takes a higher one after a lower one:

1. **the chat's advisory lock** (``pg_advisory_xact_lock``, key ``chat_lock_key(connection,
   order_key)``): webhook processing only, one chat's events one at a time
   (``apps.integrations.webhooks.process``);
2. **webhook events** of that chat, ascending id (the older waiting ones, then its own);
3. **the contact** (``contact_upsert``: ``Contact`` FOR UPDATE);
4. **the conversation** (``services.conversation_locked``: ``Conversation`` FOR UPDATE), the
   lock every writer of a conversation's state takes: inbound recording, handoff, takeover, the AI
   turn's handoff and delivery, the turn recovery, draft decisions;
5. **the conversation's children**: the ``AITurn`` (recovery), ``Draft`` rows
   (``drafts._lock`` locks the conversation first, then the draft),
   ``AISession``, and the new ``Message`` rows (inserts);
6. **single-row claims in autocommit**, outside any of the above: the outbound message's
   ``queued -> sending`` claim, the webhook event's processing claim, billing reservations
   (``Budget`` then ``Reservation``), taken by the AI turn before and after its AI call, never
   while it holds the conversation.

Not row locks, and never waited on inside a transaction: the conversation's AI turn lock in
Redis (taken before any database lock, non-blocking: a busy turn re-queues itself) and the AI
concurrency slots (taken outside any transaction, around the AI call).

Why: one worker applying a connection's events in arrival order took every older event's row
lock while another held the conversation for an AI reply; a 500-message burst on one
connection cost 109 deadlock retries (issue 18). Events are now ordered per chat (1), and the
draft decisions, which locked the draft before its conversation, follow (4) then (5).
"""

from __future__ import annotations

LOCK_ORDER = (
    "webhook chat advisory lock",
    "webhook events (ascending id)",
    "contact",
    "conversation",
    "conversation children (AI turn, draft, AI session, new messages)",
    "autocommit claims (outbound message, webhook claim, budget, reservation)",
)
