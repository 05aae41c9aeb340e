"""The AI turn's reply app lists come from a per-process cache (issue 19): no statement while
nothing changed, and every AIApp / AccountAIApp write, in any process, is seen by the next turn."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest

from apps.conversations import ai_app_cache
from apps.conversations.failover import ai_apps_for
from apps.conversations.models import Conversation
from apps.core.redis import get_redis
from apps.wechat_accounts.models import AccountAIApp
from apps.wechat_accounts.services import contact_upsert
from tests.conversations.helpers import ai_app, gewe_connection, gewe_login

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    ai_app_cache.clear_local()
    yield
    ai_app_cache.clear_local()


def _conversation(org, account, wxid="wxid_cache_cust") -> Conversation:
    contact = contact_upsert(org=org, account=account, wxid=wxid)
    return Conversation.objects.create(org=org, account=account, contact=contact)


def test_unchanged_lists_cost_no_statement(
    org, account, simulators_clean, django_assert_num_queries
):
    default = ai_app(org, simulators_clean, name="Org default")
    special = ai_app(org, simulators_clean, name="Account first", default=False)
    AccountAIApp.objects.create(org=org, account=account, ai_app=special, position=0)
    conversation = _conversation(org, account)
    assert ai_apps_for(conversation) == [special, default]
    with django_assert_num_queries(0):
        assert ai_apps_for(conversation) == [special, default]


def test_callers_get_copies(org, account, simulators_clean):
    ai_app(org, simulators_clean, name="Org default")
    conversation = _conversation(org, account)
    ai_apps_for(conversation)[0].name = "changed by a caller"
    assert ai_apps_for(conversation)[0].name == "Org default"


def test_app_and_list_writes_are_seen_by_the_next_turn(org, account, simulators_clean):
    default = ai_app(org, simulators_clean, name="Org default")
    backup = ai_app(org, simulators_clean, name="Backup", default=False, failover_position=1)
    special = ai_app(org, simulators_clean, name="Account first", default=False)
    conversation = _conversation(org, account)
    assert ai_apps_for(conversation) == [default, backup]
    entry = AccountAIApp.objects.create(org=org, account=account, ai_app=special, position=0)
    assert ai_apps_for(conversation) == [special, default, backup]
    backup.enabled = False
    backup.save()
    assert ai_apps_for(conversation) == [special, default]
    default.name = "Renamed"
    default.save()
    assert [a.name for a in ai_apps_for(conversation)] == ["Account first", "Renamed"]
    entry.delete()
    assert ai_apps_for(conversation) == [default]
    special.delete()
    default.delete()
    assert ai_apps_for(conversation) == []


def test_a_write_in_another_process_changes_the_token(org, account, simulators_clean):
    default = ai_app(org, simulators_clean, name="Org default")
    conversation = _conversation(org, account)
    assert ai_apps_for(conversation) == [default]
    # Another process disabled the app: its row changed and so did the organisation's token.
    type(default).objects.filter(pk=default.pk).update(enabled=False)
    assert ai_apps_for(conversation) == [default]  # same token: this process's entry
    get_redis().set(ai_app_cache._token_key(org.pk), uuid.uuid4().hex)
    assert ai_apps_for(conversation) == []


def test_entries_expire_even_without_a_token_change(org, account, simulators_clean, settings):
    default = ai_app(org, simulators_clean, name="Org default")
    conversation = _conversation(org, account)
    assert ai_apps_for(conversation) == [default]
    type(default).objects.filter(pk=default.pk).update(enabled=False)  # bypasses the signals
    settings.CONVERSATION_AI_APP_CACHE_SECONDS = 0
    assert ai_apps_for(conversation) == []


def test_without_redis_every_turn_reads_the_database(
    org, account, simulators_clean, django_assert_num_queries
):
    default = ai_app(org, simulators_clean, name="Org default")
    conversation = _conversation(org, account)
    from apps.core import token_cache

    with mock.patch.object(token_cache, "get_redis", side_effect=ConnectionError("down")):
        assert ai_apps_for(conversation) == [default]
        with django_assert_num_queries(4):
            assert ai_apps_for(conversation) == [default]
    assert ai_app_cache._entries == {}


def test_organisations_never_share_an_entry(org, other_org, account, simulators_clean, gewe):
    mine = ai_app(org, simulators_clean, name="Mine")
    theirs = ai_app(other_org, simulators_clean, name="Theirs")
    their_account = gewe_login(
        other_org, gewe_connection(other_org, simulators_clean), gewe, name="Other sales"
    )
    # An account list naming another organisation's app never yields it.
    AccountAIApp.objects.create(org=org, account=account, ai_app=theirs, position=0)
    assert ai_apps_for(_conversation(org, account)) == [mine]
    assert ai_apps_for(_conversation(other_org, their_account)) == [theirs]
    mine.enabled = False
    mine.save()  # invalidates this organisation only
    assert ai_apps_for(_conversation(org, account, "wxid_2")) == []
    assert ai_apps_for(_conversation(other_org, their_account, "wxid_2")) == [theirs]
