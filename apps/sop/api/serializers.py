from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.core.api.serializers import OrgScopedPrimaryKeyRelatedField
from apps.integrations.models import AIApp
from apps.media.models import MediaFile
from apps.sop import selectors
from apps.sop.models import SopDelivery, SopPlan, SopRun, SopStep
from apps.wechat_accounts.models import Contact, Tag, WeChatAccount


class SopStepSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(required=False)
    condition_tag = OrgScopedPrimaryKeyRelatedField(
        queryset=Tag.objects.all(), required=False, allow_null=True
    )
    end_tag = OrgScopedPrimaryKeyRelatedField(
        queryset=Tag.objects.all(), required=False, allow_null=True
    )
    end_plan = OrgScopedPrimaryKeyRelatedField(
        queryset=SopPlan.objects.all(), required=False, allow_null=True
    )
    # media: an uploaded file (POST /api/v1/media/files/) sent by an image/file/video step.
    media_file = OrgScopedPrimaryKeyRelatedField(
        queryset=MediaFile.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = SopStep
        fields = [
            "id",
            "order",
            "delay_days",
            "delay_hours",
            "delay_minutes",
            "send_time",
            "kind",
            "text",
            "url",
            "media_file",
            "file_name",
            "title",
            "description",
            "ai_prompt",
            "condition",
            "condition_tag",
            "end_action",
            "end_tag",
            "end_plan",
        ]


class ProgressSummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    percent = serializers.FloatField()
    counts = serializers.DictField(child=serializers.IntegerField())


class SopPlanSerializer(serializers.ModelSerializer):
    """A plan with its active steps nested (writing ``steps`` replaces them: give ``id`` to
    keep and edit a step). ``target_ids`` is the seed's name for ``target_contact_ids``."""

    accounts = OrgScopedPrimaryKeyRelatedField(
        queryset=WeChatAccount.objects.all(), many=True, required=False
    )
    include_tags = OrgScopedPrimaryKeyRelatedField(
        queryset=Tag.objects.all(), many=True, required=False
    )
    exclude_tags = OrgScopedPrimaryKeyRelatedField(
        queryset=Tag.objects.all(), many=True, required=False
    )
    relative_tag = OrgScopedPrimaryKeyRelatedField(
        queryset=Tag.objects.all(), required=False, allow_null=True
    )
    stop_tag = OrgScopedPrimaryKeyRelatedField(
        queryset=Tag.objects.all(), required=False, allow_null=True
    )
    ai_app = OrgScopedPrimaryKeyRelatedField(
        queryset=AIApp.objects.all(), required=False, allow_null=True
    )
    target_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        source="target_contact_ids",
        required=False,
        help_text=_("Contacts of this organization (explicit-list plans)."),
    )
    steps = SopStepSerializer(many=True, required=False, source="active_step_list")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = SopPlan
        fields = [
            "id",
            "name",
            "description",
            "owner",
            "created_by",
            "accounts",
            "target_type",
            "target_ids",
            "tag_match",
            "include_tags",
            "exclude_tags",
            "trigger",
            "start_at",
            "cron",
            "relative_event",
            "relative_tag",
            "enroll_existing",
            "status",
            "stop_on_reply",
            "stop_on_handoff",
            "stop_tag",
            "stop_after",
            "quiet_hours_mode",
            "quiet_hours_start",
            "quiet_hours_end",
            "ai_app",
            "steps",
            "progress",
            "activated_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "owner",
            "created_by",
            "status",
            "activated_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]

    def validate_target_ids(self, value: list[int]) -> list[int]:
        # Another organisation's contact and a missing one are refused alike.
        org = self.context.get("org")
        wanted = set(value)
        found = set(
            Contact.objects.filter(org=org, id__in=wanted).values_list("id", flat=True)
            if org is not None
            else []
        )
        unknown = sorted(wanted - found)
        if unknown:
            raise serializers.ValidationError(
                _("Unknown contacts: %(ids)s") % {"ids": ", ".join(map(str, unknown[:20]))}
            )
        return value

    def get_progress(self, obj) -> ProgressSummarySerializer:
        counts = {s: getattr(obj, f"n_{s}", None) for s in selectors.STATUSES}
        if any(v is None for v in counts.values()):
            data = selectors.plan_progress(plan=obj)
            data.pop("runs", None)
            counts = data["counts"]
        total = sum(counts.values())
        done = counts["sent"] + counts["failed"] + counts["skipped"]
        return {
            "total": total,
            "done": done,
            "percent": round(100.0 * done / total, 1) if total else 0.0,
            "counts": counts,
        }


class DryRunRequestSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)


class DryRunItemSerializer(serializers.Serializer):
    step_id = serializers.IntegerField()
    step_order = serializers.IntegerField()
    kind = serializers.CharField()
    contact_id = serializers.IntegerField()
    contact = serializers.CharField()
    account_id = serializers.IntegerField()
    due_at = serializers.DateTimeField()
    text = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)
    title = serializers.CharField(allow_blank=True)
    ai_prompt = serializers.BooleanField(help_text=_("True: the text is the rendered prompt."))


class EstimateSerializer(serializers.Serializer):
    targets = serializers.IntegerField()
    steps = serializers.IntegerField()
    messages = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    send_duration_seconds = serializers.IntegerField()
    estimated_finish_at = serializers.DateTimeField(allow_null=True)


class RunProgressSerializer(ProgressSummarySerializer):
    run_id = serializers.IntegerField()
    occurrence = serializers.CharField()
    status = serializers.ChoiceField(choices=SopRun.Status.choices)
    started_at = serializers.DateTimeField()


class ProgressSerializer(ProgressSummarySerializer):
    plan_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=SopPlan.Status.choices)
    runs = RunProgressSerializer(many=True)


class SopDeliverySerializer(serializers.ModelSerializer):
    contact_wxid = serializers.CharField(source="contact.wxid", read_only=True)
    contact_name = serializers.CharField(source="contact.display_name", read_only=True)
    step_order = serializers.IntegerField(source="step.order", read_only=True)

    class Meta:
        model = SopDelivery
        fields = [
            "id",
            "plan",
            "run",
            "enrollment",
            "step",
            "step_order",
            "contact",
            "contact_wxid",
            "contact_name",
            "account",
            "occurrence",
            "due_at",
            "status",
            "reason",
            "rendered_text",
            "message",
            "attempts",
            "queued_at",
            "sent_at",
        ]
        read_only_fields = fields
