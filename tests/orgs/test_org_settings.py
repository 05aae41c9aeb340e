"""Typed organisation settings: declarations, the reader, the writer and the form."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.orgs import services
from apps.orgs.org_settings import (
    HANDOFF_ACK_DEFAULT,
    REGISTRY,
    OrgSettingsForm,
    org_setting,
    settings_with,
)

pytestmark = pytest.mark.django_db


def test_defaults_when_nothing_is_stored(org):
    org.settings = {}
    assert org_setting(org, "handoff_keywords") == []
    assert org_setting(org, "handoff_ack_enabled") is False
    assert org_setting(org, "handoff_ack_text") == HANDOFF_ACK_DEFAULT
    assert org_setting(org, "ai_auto_return_minutes") == 0
    assert org_setting(org, "quiet_hours") is None
    assert org_setting(org, "conversation_visibility") == "all"


def test_an_invalid_stored_value_reads_as_the_default(org):
    org.settings = {"ai_auto_return_minutes": "ten", "handoff_keywords": "转人工"}
    assert org_setting(org, "ai_auto_return_minutes") == 0
    assert org_setting(org, "handoff_keywords") == []


def test_the_older_analysis_flag_is_read_as_the_mode(org):
    org.settings = {"ai_analysis": True}
    assert org_setting(org, "ai_analysis_mode") == "intent_sentiment"
    org.settings = {"ai_analysis": False}
    assert org_setting(org, "ai_analysis_mode") == "off"
    org.settings = {"ai_analysis_mode": "record", "ai_analysis": False}
    assert org_setting(org, "ai_analysis_mode") == "intent_sentiment"


def test_nested_keys_are_written_without_touching_other_keys():
    data = {"notifications": {"email": True}, "custom": 1}
    result = settings_with(data, {"notifications.sms_numbers": ["+8613800000000"]})
    assert result == {
        "notifications": {"email": True, "sms_numbers": ["+8613800000000"]},
        "custom": 1,
    }
    assert data == {"notifications": {"email": True}, "custom": 1}  # not mutated


def test_writing_an_invalid_value_names_the_key():
    with pytest.raises(ValidationError) as info:
        settings_with({}, {"conversation_visibility": "nobody", "unknown": 1})
    assert set(info.value.error_dict) == {"conversation_visibility", "unknown"}


def test_the_service_saves_typed_values_and_keeps_the_rest(org, owner):
    org.settings = {"kept": "yes"}
    org.save()
    services.organization_settings_update(
        org=org, actor=owner, values={"handoff_keywords": ["经理", "经理", " 投诉 "]}
    )
    org.refresh_from_db()
    assert org.settings["kept"] == "yes"
    assert org_setting(org, "handoff_keywords") == ["经理", "投诉"]


def test_the_form_shows_every_declared_key_and_validates(org):
    form = OrgSettingsForm(org=org)
    assert set(form.fields) == set(REGISTRY)
    data = {
        "handoff_keywords": "经理\n投诉, 退款",
        "handoff_ack_enabled": "on",
        "handoff_ack_text": "",
        "ai_auto_return_minutes": "30",
        "ai_analysis_mode": "intent",
        "conversation_visibility": "assigned",
        "default_private_reply_policy": "all",
        "default_group_reply_policy": "mention",
        "quiet_hours_0": "22:00",
        "quiet_hours_1": "08:00",
        "wechat_send_limit_per_minute": "100",
        "notifications.sms_numbers": "+8613800000000",
    }
    form = OrgSettingsForm(data, org=org)
    assert form.is_valid(), form.errors
    values = form.cleaned_data
    assert values["handoff_keywords"] == ["经理", "投诉", "退款"]
    assert values["handoff_ack_text"] == HANDOFF_ACK_DEFAULT  # blank: back to the default
    assert values["quiet_hours"] == {"start": "22:00", "end": "08:00"}
    assert values["ai_auto_return_minutes"] == 30


def test_the_form_rejects_bad_values(org):
    form = OrgSettingsForm(
        {
            "ai_analysis_mode": "sometimes",
            "conversation_visibility": "all",
            "default_private_reply_policy": "all",
            "default_group_reply_policy": "mention",
            "quiet_hours_0": "22:00",
            "quiet_hours_1": "",
            "ai_auto_return_minutes": "-5",
            "notifications.sms_numbers": "12345",
        },
        org=org,
    )
    assert not form.is_valid()
    assert {
        "ai_analysis_mode",
        "quiet_hours",
        "ai_auto_return_minutes",
        "notifications.sms_numbers",
    } <= set(form.errors)
