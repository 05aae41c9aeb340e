"""The workspace list at scale: search (rare and frequent terms), the capped count, the view
indexes, drafts scoped to the organisation; tenancy and visibility through every path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.conversations import selectors
from apps.conversations.api.pagination import ConversationPagination
from apps.conversations.models import Conversation, Draft, Message
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/conversations/"


def make_conversation(org, *, texts=("你好",), nickname="王先生", remark="", **fields):
    account = WeChatAccountFactory(org=org)
    contact = ContactFactory(org=org, account=account, nickname=nickname, remark=remark)
    conversation = Conversation.objects.create(
        org=org, account=account, contact=contact, last_message_at=timezone.now(), **fields
    )
    for text in texts:
        Message.objects.create(
            org=org,
            conversation=conversation,
            account=account,
            direction=Message.Direction.INBOUND,
            sender_kind=Message.SenderKind.CUSTOMER,
            text=text,
        )
    return conversation


def ids(client, query: str) -> set[int]:
    response = client.get(API + query)
    assert response.status_code == 200, response.data
    return {row["id"] for row in response.data["results"]}


@pytest.fixture
def manager(make_member):
    return make_member(Role.MANAGER)


def test_search_matches_message_text_and_contact_names_of_own_org_only(org, other_org, manager):
    by_text = make_conversation(org, texts=("请问这个产品多少钱？", "谢谢"))
    by_nickname = make_conversation(org, nickname="客户123")
    by_remark = make_conversation(org, remark="老客户 VIP")
    make_conversation(org, texts=("没有关系",))
    # The same text and name in another organisation is never found.
    make_conversation(other_org, texts=("请问这个产品多少钱？",), nickname="客户123")
    client = client_for(manager, org)

    assert ids(client, "?q=多少钱") == {by_text.id}
    assert ids(client, "?q=产品多少") == {by_text.id}
    assert ids(client, "?q=客户123") == {by_nickname.id}
    assert ids(client, "?q=vip") == {by_remark.id}  # case-insensitive
    assert ids(client, "?q=不存在的词") == set()
    # Short terms without letter case skip UPPER(); with case they are still case-insensitive.
    assert ids(client, "?q=谢谢") == {by_text.id}
    assert ids(client, "?q=Vi") == ids(client, "?q=vI") == {by_remark.id}
    msg = make_conversation(org, texts=("型号 Xy 有货吗",))
    assert ids(client, "?q=xY") == {msg.id}
    # Every term in one message.
    assert ids(client, "?q=产品%20多少钱") == {by_text.id}
    assert ids(client, "?q=产品%20谢谢") == set()


def test_frequent_term_checks_each_conversation_with_the_same_answer(
    org, other_org, manager, monkeypatch, django_assert_max_num_queries
):
    hits = [make_conversation(org, texts=("有优惠吗", "有优惠吗", "还有别的吗")) for _ in range(3)]
    make_conversation(org, texts=("不需要",))
    make_conversation(other_org, texts=("有优惠吗",) * 3)
    client = client_for(manager, org)
    rare = ids(client, "?q=有优惠")
    monkeypatch.setattr(selectors, "SEARCH_PROBE_MESSAGES", 2)  # every term is "frequent" now
    with django_assert_max_num_queries(8):
        response = client.get(API + "?q=有优惠")
    assert {row["id"] for row in response.data["results"]} == rare == {c.id for c in hits}
    assert response.data["count"] == 3 and response.data["count_exact"] is True
    assert ids(client, "?q=别的%20还有") == {c.id for c in hits}


def test_search_respects_the_visibility_rule(org, make_member):
    agent, colleague = make_member(Role.AGENT), make_member(Role.AGENT)
    mine = make_conversation(org, texts=("订单号 A1234",), assignee=agent)
    make_conversation(org, texts=("订单号 A1234",), assignee=colleague)
    org.settings = {**(org.settings or {}), "conversation_visibility": "assigned"}
    org.save(update_fields=["settings"])
    assert ids(client_for(agent, org), "?q=a1234") == {mine.id}


def test_search_query_count_does_not_grow(org, manager, django_assert_max_num_queries):
    for _ in range(3):
        make_conversation(org, texts=("多少钱",))
    client = client_for(manager, org)
    with django_assert_max_num_queries(8) as small:
        client.get(API + "?q=多少钱")
    for _ in range(12):
        make_conversation(org, texts=("多少钱",))
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(API + "?q=多少钱").data["count"] == 15


def test_count_stops_at_the_limit_and_next_still_follows(org, manager, monkeypatch):
    monkeypatch.setattr(ConversationPagination, "count_limit", 3)
    for _ in range(5):
        make_conversation(org)
    client = client_for(manager, org)

    first = client.get(API + "?page_size=2").data
    assert first["count"] == 3 and first["count_exact"] is False and first["next"]
    seen = [row["id"] for row in first["results"]]
    page = client.get(first["next"]).data
    seen += [row["id"] for row in page["results"]]
    # Far enough to see the end: counted exactly.
    last = client.get(page["next"]).data
    assert last["count"] == 5 and last["count_exact"] is True and last["next"] is None
    seen += [row["id"] for row in last["results"]]
    assert len(seen) == len(set(seen)) == 5
    assert client.get(API + "?page_size=2&page=4").status_code == 404
    # page=last counts them all: the real last page.
    last_by_name = client.get(API + "?page_size=2&page=last").data
    assert last_by_name["count"] == 5 and last_by_name["count_exact"] is True
    assert [row["id"] for row in last_by_name["results"]] == seen[4:]
    # Under the limit the count is exact.
    monkeypatch.setattr(ConversationPagination, "count_limit", 1000)
    assert client.get(API).data | {"results": None} == {
        "count": 5,
        "count_exact": True,
        "next": None,
        "previous": None,
        "results": None,
    }


def test_has_drafts_counts_only_pending_drafts_of_the_row(org, other_org, manager):
    with_draft = make_conversation(org)
    without = make_conversation(org)
    expires = timezone.now() + timedelta(hours=1)
    Draft.objects.create(org=org, conversation=with_draft, text="建议回复", expires_at=expires)
    Draft.objects.create(
        org=org, conversation=without, text="旧的", expires_at=expires, status="discarded"
    )
    rows = {r["id"]: r for r in client_for(manager, org).get(API).data["results"]}
    assert rows[with_draft.id]["has_drafts"] is True and rows[without.id]["has_drafts"] is False


def test_list_rows_show_the_related_names(org, make_member, manager):
    agent = make_member(Role.AGENT)
    agent.name = "小李"
    agent.save(update_fields=["name"])
    conversation = make_conversation(org, nickname="", remark="王总", assignee=agent)
    row = client_for(manager, org).get(API).data["results"][0]
    assert row["id"] == conversation.id
    assert row["display_name"] == "王总" and row["assignee_name"] == "小李"
    assert row["account_name"] == conversation.account.name
    assert row["contact"]["wxid"] == conversation.contact.wxid


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram index is PostgreSQL's")
def test_message_search_is_served_by_the_trigram_index(org):
    make_conversation(org, texts=("请问这个产品多少钱？",))
    # What the search's icontains compiles to, alone: only the trigram index can serve it.
    lookup = Message.objects.filter(text__icontains="产品多少钱").order_by().values("id")
    sql, params = lookup.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s", [Message._meta.db_table]
        )
        names = {row[0] for row in cursor.fetchall()}
        assert "conversations_message_text_upper_trgm" in names
        assert "conversations_message_text_trgm" not in names  # replaced, not kept
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "conversations_message_text_upper_trgm" in plan, plan
