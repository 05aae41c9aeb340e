"""Domain events other code can subscribe to (Django signals, sent after commit by services).

They decouple the apps: billing announces a threshold, WeChat accounts a status change; the
notification and monitoring code listens without the sender importing it.
"""

from django.dispatch import Signal

# kwargs: org_id, budget_id, threshold (int percent), period (str "YYYY-MM"), used, limit
budget_threshold_crossed = Signal()
# kwargs: org_id, account_id, from_status, to_status, reason
account_status_changed = Signal()
# kwargs: org_id, conversation_id, reason, assignee_id
conversation_handed_off = Signal()
# kwargs: org_id, alert_id
alert_raised = Signal()
# kwargs: org_id, contact_id (a friend was added to a WeChat account; SOP relative triggers)
contact_added = Signal()
# kwargs: org_id, contact_id, tag_id (a tag was applied to a contact; SOP relative triggers)
tag_applied = Signal()
# kwargs: org_id, ai_app_id, ai_app_name, error (an AI app's circuit breaker opened: it failed
# AI_BREAKER_FAILURES times within AI_BREAKER_WINDOW_SECONDS; turns fail over past it)
ai_app_breaker_opened = Signal()
# kwargs: org_id, ai_app_id, ai_app_name (its probe succeeded: the breaker closed again)
ai_app_breaker_closed = Signal()
# kwargs: org_id, request_id, provider, model, reserved_tokens, reported_tokens,
# reported_input_tokens, reported_output_tokens, reserved_cost, currency, conversation_id (a
# provider reported more usage than was reserved under a hard budget; only the reservation was
# charged)
ai_usage_overrun = Signal()
# kwargs: org_id, account_id, request_id, wxid (a friend request was accepted and the contact
# added; the conversations app sends the account's welcome message)
friend_request_accepted = Signal()
# kwargs: org_id, account_id, message_id, retry_after (seconds) (the send pipeline postponed a
# queued message because the account's or the global rate limit was reached; reports count it)
send_rate_limited = Signal()
