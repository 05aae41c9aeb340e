"""``manage.py seed_demo``: the demo organisation has what the README walkthrough promises, and
running it again duplicates nothing."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from apps.billing.models import Budget, CostLedger
from apps.conversations.models import CannedReply, Conversation, Message
from apps.integrations.models import AIApp, PlatformConnection
from apps.monitoring.models import Alert
from apps.orgs.models import Membership, Organization
from apps.sop.models import SopDelivery, SopPlan
from apps.wechat_accounts.models import Contact, GroupMember, Tag, WeChatAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _counts() -> dict:
    models = [
        Organization,
        Membership,
        PlatformConnection,
        AIApp,
        WeChatAccount,
        Contact,
        GroupMember,
        Tag,
        Conversation,
        Message,
        CannedReply,
        SopPlan,
        SopDelivery,
        Budget,
        CostLedger,
        Alert,
    ]
    return {model.__name__: model.objects.count() for model in models}


def test_seed_prints_and_keeps_three_logins_that_work(seeded, settings):
    org = Organization.objects.get(slug="demo")
    logins = json.loads((settings.VAR_DIR / "demo_logins.json").read_text())
    assert [row["role"] for row in logins] == ["owner", "agent", "viewer"]
    for row in logins:
        assert f"{row['email']} / {row['password']}" in seeded
        user = authenticate(username=row["email"], password=row["password"])
        assert user is not None, row["email"]
        assert Membership.objects.get(org=org, user=user).role == row["role"]
        assert user.default_org_id == org.pk


def test_seed_creates_an_online_account_customers_tags_and_groups(seeded):
    org = Organization.objects.get(slug="demo")
    account = WeChatAccount.objects.get(org=org)
    assert account.status == WeChatAccount.Status.ONLINE
    assert account.device_id and account.wxid and account.connection.provider == "gewe"
    assert account.connection.base_url.endswith("/gewe/v2/api")
    friends = Contact.objects.filter(account=account, kind=Contact.Kind.FRIEND)
    assert 45 <= friends.count() <= 55
    # Realistic Chinese names, not "customer 0001".
    assert all("\u4e00" <= f.nickname[0] <= "\u9fff" for f in friends)
    assert Tag.objects.filter(org=org).count() >= 5
    assert friends.filter(tags__isnull=False).distinct().count() >= 30
    groups = Contact.objects.filter(account=account, kind=Contact.Kind.GROUP)
    assert groups.count() == 2
    for group in groups:
        assert GroupMember.objects.filter(group=group).count() >= 5


def test_seed_creates_conversations_in_every_state_with_history(seeded):
    org = Organization.objects.get(slug="demo")
    conversations = Conversation.objects.filter(org=org)
    ai = conversations.filter(mode=Conversation.Mode.AI, status=Conversation.Status.OPEN)
    waiting = conversations.filter(mode=Conversation.Mode.HUMAN, status=Conversation.Status.PENDING)
    resolved = conversations.filter(status=Conversation.Status.RESOLVED)
    assert ai.count() >= 2 and waiting.count() >= 1 and resolved.count() >= 1
    assert waiting.filter(handoff_reason="keyword", assignee__isnull=False).exists()
    for conversation in conversations:
        kinds = set(
            Message.objects.filter(conversation=conversation).values_list("sender_kind", flat=True)
        )
        assert Message.SenderKind.CUSTOMER in kinds and len(kinds) >= 2, conversation
    # The AI conversations count as answered: a new message is the only one the AI looks at.
    for conversation in ai:
        last_inbound = Message.objects.filter(
            conversation=conversation, direction=Message.Direction.INBOUND
        ).latest("id")
        assert conversation.ai_answered_message_id == last_inbound.pk
    assert conversations.filter(contact__kind=Contact.Kind.GROUP).exists()


def test_seed_creates_sop_progress_budget_usage_and_one_open_alert(seeded):
    org = Organization.objects.get(slug="demo")
    plan = SopPlan.objects.get(org=org)
    assert plan.status == SopPlan.Status.ACTIVE
    deliveries = SopDelivery.objects.filter(plan=plan)
    sent = deliveries.filter(status=SopDelivery.Status.SENT).count()
    scheduled = deliveries.filter(status=SopDelivery.Status.SCHEDULED).count()
    assert sent > 0 and scheduled > 0
    budget = Budget.objects.get(org=org)
    spent = sum(CostLedger.objects.filter(org=org).values_list("cost", flat=True))
    assert CostLedger.objects.filter(org=org).count() >= 50
    assert 0 < spent < budget.money_limit
    assert Alert.objects.filter(org=org, resolved_at__isnull=True).count() == 1


def test_seed_twice_duplicates_nothing(seeded, settings):
    first = _counts()
    logins = (settings.VAR_DIR / "demo_logins.json").read_text()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert _counts() == first
    # The passwords stay the ones printed the first time.
    assert (settings.VAR_DIR / "demo_logins.json").read_text() == logins
    for row in json.loads(logins):
        assert row["password"] in out.getvalue()
