from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.core.api.serializers import QuerySerializer


class ReportQuerySerializer(QuerySerializer):
    start = serializers.DateField(
        required=False, help_text=_("First local day (inclusive); default 29 days before end.")
    )
    end = serializers.DateField(
        required=False, help_text=_("Last local day (inclusive); default today.")
    )
    account = serializers.IntegerField(
        required=False, min_value=1, help_text=_("WeChat account id.")
    )
    agent = serializers.IntegerField(
        required=False, min_value=1, help_text=_("User id; agents always get their own.")
    )
    ai_app = serializers.IntegerField(required=False, min_value=1, help_text=_("AI app id."))
    label = serializers.IntegerField(required=False, min_value=1, help_text=_("Label id."))

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start and end:
            if start > end:
                raise serializers.ValidationError({"end": _("The end is before the start.")})
            if (end - start).days >= settings.REPORTS_MAX_RANGE_DAYS:
                raise serializers.ValidationError({"end": _("The range is too long.")})
        return attrs


class ReportRangeSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    timezone = serializers.CharField()
    account = serializers.IntegerField(allow_null=True)
    agent = serializers.IntegerField(allow_null=True)
    ai_app = serializers.IntegerField(allow_null=True)
    label = serializers.IntegerField(allow_null=True)


class ReportClockSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    p50 = serializers.FloatField(allow_null=True, help_text=_("Seconds."))
    p90 = serializers.FloatField(allow_null=True, help_text=_("Seconds."))


class ReportSpeedSerializer(serializers.Serializer):
    first_ai_response = ReportClockSerializer()
    first_human_response = ReportClockSerializer()
    handoff_wait = ReportClockSerializer()
    resolution = ReportClockSerializer()


class ReportCostBlockSerializer(serializers.Serializer):
    ai_cost = serializers.CharField(help_text=_("CNY, 2 decimals."))
    platform_cost = serializers.CharField()
    total_cost = serializers.CharField()
    cost_per_conversation = serializers.CharField(allow_null=True)
    cost_per_ai_answer = serializers.CharField(allow_null=True, help_text=_("CNY, 4 decimals."))


class ReportOverviewSummarySerializer(ReportCostBlockSerializer):
    inbound_messages = serializers.IntegerField()
    conversations_started = serializers.IntegerField()
    conversations_resolved = serializers.IntegerField()
    ai_messages = serializers.IntegerField()
    fully_automated = serializers.IntegerField()
    handoffs = serializers.IntegerField()
    still_waiting = serializers.IntegerField()
    first_ai_response_p50 = serializers.FloatField(allow_null=True)
    first_human_response_p50 = serializers.FloatField(allow_null=True)
    handoff_wait_p50 = serializers.FloatField(allow_null=True)
    handoff_wait_p90 = serializers.FloatField(allow_null=True)


class ReportOverviewDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    inbound_messages = serializers.IntegerField()
    ai_messages = serializers.IntegerField()
    agent_messages = serializers.IntegerField()
    handoffs = serializers.IntegerField()
    conversations_resolved = serializers.IntegerField()


class ReportOverviewSerializer(serializers.Serializer):
    range = ReportRangeSerializer()
    summary = ReportOverviewSummarySerializer()
    series = ReportOverviewDaySerializer(many=True)


class ReportConversationsSummarySerializer(serializers.Serializer):
    inbound_messages = serializers.IntegerField()
    conversations_started = serializers.IntegerField()
    conversations_resolved = serializers.IntegerField()
    ai_turns = serializers.IntegerField()
    ai_turns_answered = serializers.IntegerField()
    ai_messages = serializers.IntegerField()
    answered_by_ai = serializers.IntegerField()
    fully_automated = serializers.IntegerField()
    ai_failures = serializers.IntegerField()
    handoffs = serializers.IntegerField()
    still_waiting = serializers.IntegerField()
    drafts_sent = serializers.IntegerField()
    drafts_edited = serializers.IntegerField()
    drafts_discarded = serializers.IntegerField()


class ReportHandoffReasonsSerializer(serializers.Serializer):
    keyword = serializers.IntegerField()
    sentiment = serializers.IntegerField()
    ai_failed = serializers.IntegerField()
    budget = serializers.IntegerField()
    phone_reply = serializers.IntegerField()
    agent = serializers.IntegerField()
    no_ai_app = serializers.IntegerField()
    other = serializers.IntegerField()


class ReportConversationsDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    inbound_messages = serializers.IntegerField()
    conversations_started = serializers.IntegerField()
    conversations_resolved = serializers.IntegerField()
    ai_messages = serializers.IntegerField()
    handoffs = serializers.IntegerField()


class ReportConversationsSerializer(serializers.Serializer):
    range = ReportRangeSerializer()
    summary = ReportConversationsSummarySerializer()
    handoffs_by_reason = ReportHandoffReasonsSerializer()
    speed = ReportSpeedSerializer()
    series = ReportConversationsDaySerializer(many=True)


class ReportAgentRowSerializer(serializers.Serializer):
    agent_id = serializers.IntegerField()
    agent = serializers.CharField()
    conversations_handled = serializers.IntegerField()
    messages_sent = serializers.IntegerField()
    first_response_p50 = serializers.FloatField(allow_null=True)
    first_response_p90 = serializers.FloatField(allow_null=True)
    handoff_wait_p50 = serializers.FloatField(allow_null=True)
    handoff_wait_p90 = serializers.FloatField(allow_null=True)
    handoffs = serializers.IntegerField()
    assigned_open = serializers.IntegerField()
    drafts_sent = serializers.IntegerField()
    drafts_edited = serializers.IntegerField()
    drafts_discarded = serializers.IntegerField()
    cost = serializers.CharField()


class ReportAgentsSerializer(serializers.Serializer):
    range = ReportRangeSerializer()
    rows = ReportAgentRowSerializer(many=True)


class ReportAccountRowSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    account = serializers.CharField()
    messages_in = serializers.IntegerField()
    messages_out = serializers.IntegerField()
    ai_messages = serializers.IntegerField()
    agent_messages = serializers.IntegerField()
    sop_messages = serializers.IntegerField()
    send_failures = serializers.IntegerField()
    delivery_unknown = serializers.IntegerField()
    handoffs = serializers.IntegerField()
    offline_hours = serializers.FloatField()
    rate_limit_deferrals = serializers.IntegerField()
    cost = serializers.CharField()


class ReportAccountsSerializer(serializers.Serializer):
    range = ReportRangeSerializer()
    rows = ReportAccountRowSerializer(many=True)


class ReportSopTotalsSerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    replied = serializers.IntegerField()
    reply_rate = serializers.FloatField(allow_null=True)


class ReportSopRowSerializer(ReportSopTotalsSerializer):
    plan_id = serializers.IntegerField()
    plan = serializers.CharField()
    step_id = serializers.IntegerField()
    step = serializers.CharField()
    position = serializers.IntegerField()


class ReportSopSerializer(serializers.Serializer):
    range = ReportRangeSerializer()
    summary = ReportSopTotalsSerializer()
    rows = ReportSopRowSerializer(many=True)


class ReportCostDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    ai_cost = serializers.CharField()
    platform_cost = serializers.CharField()


class ReportCostSerializer(serializers.Serializer):
    range = ReportRangeSerializer()
    summary = ReportCostBlockSerializer()
    series = ReportCostDaySerializer(many=True)
    by_account = serializers.ListField(child=serializers.DictField())
    by_agent = serializers.ListField(child=serializers.DictField())
    by_ai_app = serializers.ListField(child=serializers.DictField())
