"""Budgets that truly cap, second pass (issue 18): the output cap reaches FastGPT and Dify too
(Dify's API has no such parameter: only an opt-in input variable), and a provider's usage above
the reservation raises a monitoring alert naming the AI app and the amounts, seen by its own
organisation only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from apps.billing.models import CostLedger, Reservation
from apps.core import events
from apps.integrations.models import AIApp
from apps.monitoring.models import Alert, Notification
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.conftest import client_for
from tests.conversations.helpers import ai_app, deliver
from tests.fixtures_simulators import SIM_DIFY_KEY, SIM_FASTGPT_KEY

pytestmark = pytest.mark.django_db

CUSTOMER = "wxid_money02"
LONG_ANSWER = "这款产品非常适合您。" * 300  # 3,000 tokens in the simulators' count


def _say(gewe, account, text, capture):
    payload = gewe.build_text(from_wxid=CUSTOMER, text=text, to_account=account.device_id)
    deliver(account.connection, payload, capture)


def _session_app(org, simulators, provider, **fields) -> AIApp:
    url, key = {
        AIApp.Provider.FASTGPT: (simulators.urls["fastgpt"], SIM_FASTGPT_KEY),
        AIApp.Provider.DIFY: (simulators.urls["dify"], SIM_DIFY_KEY),
    }[provider]
    return AIApp.objects.create(
        org=org,
        provider=provider,
        name=f"{provider} app",
        base_url=url,
        api_key=key,
        is_default=True,
        **fields,
    )


def test_fastgpt_request_carries_max_tokens_equal_to_the_reservation(
    org, account, simulators_clean, gewe, django_capture_on_commit_callbacks
):
    _session_app(org, simulators_clean, AIApp.Provider.FASTGPT)
    _say(gewe, account, "你好，有货吗", django_capture_on_commit_callbacks)
    body = simulators_clean["fastgpt"].requests_to("/v1/chat/completions")[0].json
    reservation = Reservation.objects.get(org=org)
    assert body["max_tokens"] == reservation.estimated_output_tokens == 512
    assert "max_tokens" not in body["variables"]  # no variable unless the app asks for one


def test_fastgpt_app_max_tokens_is_sent_reserved_and_passed_as_the_named_variable(
    org, account, simulators_clean, gewe, django_capture_on_commit_callbacks
):
    _session_app(
        org,
        simulators_clean,
        AIApp.Provider.FASTGPT,
        max_tokens=200,
        extra={"max_tokens_variable": "answer_limit"},
    )
    _say(gewe, account, "你好", django_capture_on_commit_callbacks)
    body = simulators_clean["fastgpt"].requests_to("/v1/chat/completions")[0].json
    assert body["max_tokens"] == 200
    assert body["variables"]["answer_limit"] == 200
    assert Reservation.objects.get(org=org).estimated_output_tokens == 200


def test_dify_has_no_token_parameter_so_the_cap_goes_only_to_the_named_input(
    org, account, simulators_clean, gewe, django_capture_on_commit_callbacks
):
    _session_app(
        org,
        simulators_clean,
        AIApp.Provider.DIFY,
        max_tokens=300,
        extra={"max_tokens_variable": "answer_limit"},
    )
    _say(gewe, account, "你好", django_capture_on_commit_callbacks)
    body = simulators_clean["dify"].requests_to("/chat-messages")[0].json
    # Dify's /chat-messages takes no max_tokens: sending one would be a made-up field.
    assert "max_tokens" not in body
    assert body["inputs"]["answer_limit"] == 300
    assert Reservation.objects.get(org=org).estimated_output_tokens == 300


def test_dify_without_a_named_input_sends_the_documented_fields_only(
    org, account, simulators_clean, gewe, django_capture_on_commit_callbacks
):
    _session_app(org, simulators_clean, AIApp.Provider.DIFY)
    _say(gewe, account, "你好", django_capture_on_commit_callbacks)
    body = simulators_clean["dify"].requests_to("/chat-messages")[0].json
    assert set(body) == {"query", "inputs", "response_mode", "user", "conversation_id"}
    assert "max_tokens" not in body["inputs"]
    assert 512 not in body["inputs"].values()


# -- the overrun alert -------------------------------------------------------------------------


@pytest.fixture
def overrun_setup(org, account, simulators_clean):
    # ¥10 per 1K output tokens, input free: the amounts are easy to read.
    ModelPriceFactory(
        org=org,
        model="qwen-plus",
        input_price_per_1k=Decimal("0"),
        output_price_per_1k=Decimal("10"),
    )
    BudgetFactory(org=org, money_limit=Decimal("1000"), action="block")
    app = ai_app(org, simulators_clean, name="销售助手")
    # The simulator ignores max_tokens, like the provider that spent 3.7x the monthly limit.
    simulators_clean["openai"].canned["长篇"] = LONG_ANSWER
    return app


def test_overrun_raises_an_alert_naming_the_app_and_the_amounts(
    org, member, account, overrun_setup, gewe, django_capture_on_commit_callbacks
):
    _say(gewe, account, "请长篇介绍一下", django_capture_on_commit_callbacks)
    reservation = Reservation.objects.get(org=org)
    entry = CostLedger.objects.get(org=org, request_id=reservation.request_id)
    assert entry.cost == Decimal("5.12")  # 512 reserved output tokens, at most that charged
    alert = Alert.objects.get(org=org, service="ai_app")
    assert alert.type == Alert.Type.QUOTA_EXCEEDED
    assert alert.severity == Alert.Severity.HIGH
    assert alert.target == str(overrun_setup.pk)
    assert "销售助手" in alert.title
    # 3,000 reported output tokens = ¥30.00; ¥5.12 reserved and charged; ¥24.88 not charged.
    for amount in ("¥30.00", "¥5.12", "¥24.88"):
        assert amount in alert.message
    assert alert.metadata["ai_app_id"] == overrun_setup.pk
    assert alert.metadata["reported_cost"] == "30.0000000000"
    assert overrun_setup.api_key not in alert.message + alert.title + str(alert.metadata)
    # The alert machinery notified the organisation's owners/admins/managers.
    assert Notification.objects.filter(org=org, data__alert_id=alert.pk).exists()
    listed = client_for(member, org).get("/api/v1/monitoring/alerts/").json()
    assert [item["id"] for item in listed["results"]] == [alert.pk]


def test_a_repeated_overrun_bumps_the_same_alert(
    org, account, overrun_setup, gewe, django_capture_on_commit_callbacks
):
    _say(gewe, account, "请长篇介绍一下", django_capture_on_commit_callbacks)
    _say(gewe, account, "再长篇说一遍", django_capture_on_commit_callbacks)
    alert = Alert.objects.get(org=org, service="ai_app")
    assert alert.count == 2


def test_overrun_alert_title_and_message_are_translated(
    org, account, overrun_setup, gewe, django_capture_on_commit_callbacks
):
    overruns = []

    def receiver(sender, signal, **kwargs):
        overruns.append(kwargs)

    events.ai_usage_overrun.connect(receiver, dispatch_uid="test-overrun-zh")
    try:
        _say(gewe, account, "请长篇介绍一下", django_capture_on_commit_callbacks)
    finally:
        events.ai_usage_overrun.disconnect(dispatch_uid="test-overrun-zh")
    Alert.objects.filter(org=org).delete()
    # The worker answers in the deployment's language (zh-hans); tests run in English.
    with translation.override("zh-hans"):
        events.ai_usage_overrun.send(sender=Reservation, **overruns[0])
    alert = Alert.objects.get(org=org, service="ai_app")
    assert alert.title == "AI 应用“销售助手”的用量超出了预算预留"
    assert "¥30.00" in alert.message and "¥24.88" in alert.message
    assert "未计入预算" in alert.message


def test_another_organisation_sees_nothing_of_the_overrun(
    org, account, overrun_setup, outsider, other_org, gewe, django_capture_on_commit_callbacks
):
    _say(gewe, account, "请长篇介绍一下", django_capture_on_commit_callbacks)
    assert Alert.objects.filter(org=org).exists()
    assert not Alert.objects.filter(org=other_org).exists()
    assert not Notification.objects.filter(org=other_org).exists()
    listed = client_for(outsider, other_org).get("/api/v1/monitoring/alerts/").json()
    assert listed["results"] == []


def test_overrun_never_names_another_organisations_app(org, other_org, simulators_clean):
    rival_app = ai_app(other_org, simulators_clean, name="Rival secret app")
    events.ai_usage_overrun.send(
        sender=Reservation,
        org_id=org.pk,
        request_id=f"ai-turn-999-app-{rival_app.pk}-2",
        provider="openai",
        model="qwen-plus",
        reserved_tokens=600,
        reported_tokens=900,
        reported_input_tokens=100,
        reported_output_tokens=800,
        reserved_cost="0.01",
        currency="CNY",
        conversation_id=None,
    )
    alert = Alert.objects.get(org=org, service="ai_app")
    assert "Rival secret app" not in alert.title + alert.message
    assert "openai/qwen-plus" in alert.title
    assert alert.metadata["ai_app_id"] is None
    assert not Alert.objects.filter(org=other_org).exists()


def test_a_small_miss_of_the_input_estimate_is_not_alerted(org, simulators_clean):
    events.ai_usage_overrun.send(
        sender=Reservation,
        org_id=org.pk,
        request_id="ai-turn-1",
        provider="openai",
        model="qwen-plus",
        reserved_tokens=1000,
        reported_tokens=1050,  # 5 % over, output within what was reserved
        reported_input_tokens=1000,
        reported_output_tokens=50,
        reserved_cost="0.01",
        currency="CNY",
        conversation_id=None,
    )
    assert not Alert.objects.filter(org=org).exists()
