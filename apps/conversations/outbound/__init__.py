"""The one outbound send pipeline: every message to WeChat goes through ``send`` and
``outbound_deliver``.

The account's send policy (rate limits, human-like delay, quiet hours) is
``apps.wechat_accounts.send_policy``.

``send(...)`` writes an outbound ``conversations.Message`` in state ``queued`` (in the contact's
conversation) and enqueues ``outbound_deliver_task`` after commit, with the account's human-like
delay as the task's countdown (a countdown, never a sleep). The task then:

1. skips rows that are no longer ``queued`` (idempotent; a duplicate task is a no-op);
2. defers non-urgent sends during the account's quiet hours (``not_before`` + countdown), and
   leaves rows of accounts that are not online queued (``account_online`` kicks them);
3. keeps per-contact order: only the oldest unfinished (queued or sending) message per
   (account, to_wxid) may be claimed; a finished message kicks the next one;
4. takes one admission from the Redis limiter (per account per minute and per day, per
   organisation, global; ``apps.core.ratelimit``); a refusal reschedules the task with the
   limiter's wait as countdown;
5. claims the row with a conditional update ``queued -> sending`` (+ lease, attempts + 1, and
   ``call_started_at``: from the claim on the platform call may happen); a lost race gives the
   admission back;
6. calls the platform (the client does not retry sends itself), stores the platform message id
   with ``sending -> sent`` in the same statement as the send's ledger row and call log row
   (PostgreSQL), pushes ``message_status_update``, refreshes the account's ``last_seen_at`` (at
   most once a minute) and kicks the contact's next message.

Statements of one successful delivery on PostgreSQL (issue 19): the message with its account and
the per-contact order check (one query), the claim, ``sent`` + metering + call log, the
contact's next queued message. The kick stays a query of its own, after the ``sent`` commit: a
message queued while this one was sending (its task returned "waiting") is only certain to be
seen by a snapshot taken after that commit.

Errors: a definite refusal that is retryable (HTTP 5xx answer, 429, connection refused) puts
the row back to ``queued`` with exponential backoff, at most ``WECHAT_SEND_MAX_ATTEMPTS``
attempts, then ``failed`` with the reason. ``AccountOffline`` marks the account offline and
leaves the message queued for after the re-login. Anything else fails the message at once.

Exactly-once vs the ambiguous case: when the platform may have sent the message but we never
stored its answer (read timeout after the request left; a worker killed during the call, seen
by the recovery task as an expired lease with ``call_started_at`` set and no platform id), we
cannot know whether the customer got it. ``WECHAT_SEND_AMBIGUOUS_POLICY`` decides:
``at_most_once`` (default) marks it ``failed`` with code ``delivery_unknown`` so the agent
checks the chat and resends by hand (a duplicate sales message to a customer is worse, and
looks like a bot); ``at_least_once`` re-queues it. A worker killed *before* the call (lease
expired, ``call_started_at`` empty) is always re-queued: nothing can have been sent.
"""

from apps.conversations.outbound.delivery import outbound_deliver
from apps.conversations.outbound.queue import (
    KINDS,
    UNFINISHED,
    DeliveryResult,
    enqueue,
    inline_first_attempt,
)
from apps.conversations.outbound.recovery import (
    RecoveryResult,
    outbound_kick_account,
    outbound_recover,
    sends_today,
)
from apps.conversations.outbound.submit import (
    conversation_for,
    conversation_for_locked,
    send,
)

__all__ = [
    "DeliveryResult",
    "KINDS",
    "RecoveryResult",
    "UNFINISHED",
    "conversation_for",
    "conversation_for_locked",
    "enqueue",
    "inline_first_attempt",
    "outbound_deliver",
    "outbound_kick_account",
    "outbound_recover",
    "send",
    "sends_today",
]
