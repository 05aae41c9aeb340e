"""The core loop's documented lock order (``apps.conversations.locking``) is the order the code
takes its row locks in: conversation before its children (drafts, AI turns)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.conversations import drafts, locking
from apps.conversations.models import Draft
from tests.conftest import requires_postgres
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db


def _locked_tables(queries) -> list[str]:
    tables = []
    for query in queries:
        sql = query["sql"]
        if "FOR UPDATE" in sql or "FOR NO KEY UPDATE" in sql:
            match = re.search(r'FROM "?(\w+)"?', sql)
            if match:
                tables.append(match.group(1))
    return tables


def test_the_lock_order_is_written_down():
    assert locking.LOCK_ORDER.index("contact") < locking.LOCK_ORDER.index("conversation")
    assert "conversation children" in locking.LOCK_ORDER[4]


@requires_postgres
def test_a_draft_decision_locks_the_conversation_before_the_draft(
    account, reply_app, gewe, member, django_capture_on_commit_callbacks
):
    account.reply_mode = "draft"
    account.save(update_fields=["reply_mode"])
    payload = gewe.build_text(from_wxid="wxid_lock01", text="价格", to_account=account.device_id)
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    draft = Draft.objects.get()
    with CaptureQueriesContext(connection) as queries:
        with django_capture_on_commit_callbacks(execute=False):
            drafts.discard_draft(org=draft.org, draft_id=draft.pk, user=member)
    tables = _locked_tables(queries.captured_queries)
    assert tables.index("conversations_conversation") < tables.index("conversations_draft"), tables
