"""Failover between AI apps and the circuit breaker, against two OpenAI-compatible simulators
(the OpenAI one fails in each way, the DashScope one answers)."""

from __future__ import annotations

import pytest

from apps.billing.models import CostLedger
from apps.conversations.failover import ai_apps_for
from apps.conversations.models import AITurn, Conversation
from apps.integrations.breaker import AIAppBreaker
from apps.integrations.models import AIApp, IntegrationCall
from apps.monitoring.models import Alert
from apps.wechat_accounts.models import AccountAIApp
from tests.conversations.helpers import ai_app, deliver
from tests.fixtures_simulators import SIM_DASHSCOPE_KEY

pytestmark = pytest.mark.django_db

CUSTOMER = "wxid_cust0001"
SECOND_ANSWER = "second app answers"


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.AI_APP_RETRY_BASE_SECONDS = 0
    settings.AI_APP_ATTEMPTS = 3
    settings.AI_BREAKER_FAILURES = 5


@pytest.fixture
def dashscope_sim(simulators_clean):
    sim = simulators_clean["dashscope"]
    sim.canned["问"] = SECOND_ANSWER
    return sim


def second_app(org, simulators, **fields) -> AIApp:
    return AIApp.objects.create(
        org=org,
        provider=AIApp.Provider.OPENAI,
        name="Backup AI",
        base_url=simulators.urls["dashscope"],
        api_key=SIM_DASHSCOPE_KEY,
        model="qwen-plus",
        failover_position=1,
        **fields,
    )


def say(gewe, account, body="问一下"):
    return gewe.build_text(from_wxid=CUSTOMER, text=body, to_account=account.device_id)


def sent_texts(gewe):
    return [s["body"].get("content") for s in gewe.sent]


FAILURES = {
    "timeout": dict(kind="latency", delay=1.0),
    "5xx": dict(kind="error", status=500),
    "503": dict(kind="error", status=503),
    "429": dict(kind="rate_limit", retry_after=0),
    "in_stream_error": dict(kind="stream_error", after_chunks=1),
    "cut_stream": dict(kind="cut", after_chunks=1),
    "empty_answer": None,
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_first_app_failing_in_each_way_the_second_answers(
    failure,
    org,
    account,
    gewe,
    openai_sim,
    dashscope_sim,
    simulators_clean,
    settings,
    django_capture_on_commit_callbacks,
):
    streaming = failure in ("in_stream_error", "cut_stream")
    first = ai_app(org, simulators_clean, streaming=streaming)
    second = second_app(org, simulators_clean)
    if failure == "timeout":
        settings.AI_HTTP_TIMEOUT = (2.0, 0.3)
    spec = FAILURES[failure]
    if spec is None:
        openai_sim.canned["问"] = ""  # an empty answer
    else:
        openai_sim.add_fault(path="/chat/completions", **spec)

    deliver(account.connection, say(gewe, account), django_capture_on_commit_callbacks)

    assert sent_texts(gewe) == [SECOND_ANSWER]
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.ANSWERED
    assert turn.ai_app_id == second.pk and turn.failovers == 1
    assert [(a["ai_app_id"], a["outcome"]) for a in turn.app_attempts] == [
        (first.pk, "failed"),
        (second.pk, "answered"),
    ]
    # Seed 004: three attempts at the failing app, each in the call log and the ledger.
    assert turn.app_attempts[0]["attempts"] == 3
    assert IntegrationCall.objects.filter(ai_app=first).count() == 3
    if failure != "empty_answer":  # an empty answer is a successful HTTP call
        assert IntegrationCall.objects.filter(ai_app=first, ok=False).count() == 3
    assert IntegrationCall.objects.filter(ai_app=second, ok=True).count() == 1
    ledger = CostLedger.objects.filter(request_id__startswith=f"ai-turn-{turn.pk}")
    assert ledger.count() == 4
    conversation = Conversation.objects.get()
    assert conversation.mode == Conversation.Mode.AI
    reply = conversation.messages.get(sender_kind="ai")
    assert reply.ai_app_id == second.pk


def test_non_retryable_failure_fails_over_at_once(
    org,
    account,
    gewe,
    openai_sim,
    dashscope_sim,
    simulators_clean,
    django_capture_on_commit_callbacks,
):
    first = ai_app(org, simulators_clean)
    second_app(org, simulators_clean)
    openai_sim.add_fault("auth", path="/chat/completions")
    deliver(account.connection, say(gewe, account), django_capture_on_commit_callbacks)
    assert sent_texts(gewe) == [SECOND_ANSWER]
    assert IntegrationCall.objects.filter(ai_app=first, ok=False).count() == 1
    assert AITurn.objects.get().app_attempts[0]["attempts"] == 1


def test_every_app_failing_hands_off_with_every_attempt_recorded(
    org,
    account,
    gewe,
    openai_sim,
    dashscope_sim,
    simulators_clean,
    handoffs_recorder,
    django_capture_on_commit_callbacks,
):
    ai_app(org, simulators_clean)
    second_app(org, simulators_clean)
    openai_sim.add_fault("error", path="/chat/completions", status=500)
    dashscope_sim.add_fault("error", path="/chat/completions", status=500)
    deliver(account.connection, say(gewe, account), django_capture_on_commit_callbacks)
    assert gewe.sent == []
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.HANDED_OFF
    assert [a["outcome"] for a in turn.app_attempts] == ["failed", "failed"]
    assert turn.failovers == 2
    assert Conversation.objects.get().handoff_reason == "ai_failed"
    assert len(handoffs_recorder) == 1
    assert CostLedger.objects.filter(request_id__startswith=f"ai-turn-{turn.pk}").count() == 6


def test_app_order_account_list_then_org_list(org, account, simulators_clean):
    default = ai_app(org, simulators_clean, name="Org default")
    backup = second_app(org, simulators_clean)
    special = ai_app(org, simulators_clean, name="Account first", default=False)
    disabled = ai_app(org, simulators_clean, name="Disabled", default=False, enabled=False)
    from apps.wechat_accounts.services import contact_upsert

    contact = contact_upsert(org=org, account=account, wxid=CUSTOMER)
    conversation = Conversation.objects.create(org=org, account=account, contact=contact)
    assert ai_apps_for(conversation) == [default, backup]
    AccountAIApp.objects.create(org=org, account=account, ai_app=disabled, position=0)
    AccountAIApp.objects.create(org=org, account=account, ai_app=special, position=1)
    assert ai_apps_for(conversation) == [special, default, backup]
    conversation.ai_app = backup
    assert ai_apps_for(conversation) == [backup, special, default]


def test_open_breaker_skips_the_app_raises_an_alert_and_a_probe_closes_it(
    org,
    account,
    gewe,
    openai_sim,
    dashscope_sim,
    simulators_clean,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.AI_BREAKER_FAILURES = 1
    settings.AI_BREAKER_COOLDOWN_SECONDS = 60
    first = ai_app(org, simulators_clean)
    second_app(org, simulators_clean)
    openai_sim.add_fault("error", path="/chat/completions", status=500)
    cap = django_capture_on_commit_callbacks
    deliver(account.connection, say(gewe, account, "问 1"), cap)
    breaker = AIAppBreaker(org_id=org.pk, ai_app_id=first.pk)
    assert breaker.state().state == "open"
    alert = Alert.objects.get(org=org, service="ai_app")
    assert alert.type == "service_down" and alert.resolved_at is None
    calls_before = len(openai_sim.requests_to("/chat/completions"))

    deliver(account.connection, say(gewe, account, "问 2"), cap)
    assert len(openai_sim.requests_to("/chat/completions")) == calls_before  # skipped
    turn = AITurn.objects.order_by("-id").first()
    assert turn.app_attempts[0]["outcome"] == "skipped_open"
    assert sent_texts(gewe) == [SECOND_ANSWER, SECOND_ANSWER]

    # After the cool-down one probe goes through; it succeeds and closes the breaker.
    openai_sim.clear_faults()
    settings.AI_BREAKER_COOLDOWN_SECONDS = 0
    deliver(account.connection, say(gewe, account, "问 3"), cap)
    assert len(openai_sim.requests_to("/chat/completions")) == calls_before + 1
    assert breaker.state().state == "closed"
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert AITurn.objects.order_by("-id").first().ai_app_id == first.pk


def test_budget_refusal_hands_off_without_trying_other_apps(
    org,
    account,
    gewe,
    openai_sim,
    dashscope_sim,
    simulators_clean,
    django_capture_on_commit_callbacks,
):
    from tests.billing.factories import BudgetFactory

    ai_app(org, simulators_clean)
    second_app(org, simulators_clean)
    BudgetFactory(org=org, money_limit=None, token_limit=1)
    deliver(account.connection, say(gewe, account), django_capture_on_commit_callbacks)
    assert gewe.sent == []
    assert openai_sim.requests_to("/chat/completions") == []
    assert dashscope_sim.requests_to("/chat/completions") == []
    assert Conversation.objects.get().handoff_reason == "budget"
