from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.accounts.models import User
from apps.billing.models import Budget, BudgetAlert, CostLedger, Kind, ModelPrice
from apps.core.api.serializers import QuerySerializer


class MemberUserField(serializers.PrimaryKeyRelatedField):
    """A user id accepted only if the user is a member of the request's organisation (another
    organisation's user is reported like a missing one)."""

    def get_queryset(self):
        org = self.context.get("org")
        if org is None:
            return User.objects.none()
        return User.objects.filter(memberships__org=org)


class ModelPriceSerializer(serializers.ModelSerializer):
    scope = serializers.SerializerMethodField()

    class Meta:
        model = ModelPrice
        fields = [
            "id",
            "scope",
            "provider",
            "model",
            "input_price_per_1k",
            "output_price_per_1k",
            "unit_price",
            "currency",
            "valid_from",
            "note",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "scope", "created_at", "updated_at"]

    def get_scope(self, obj) -> str:
        return "global" if obj.org_id is None else "org"

    def validate_valid_from(self, value):
        # A price "valid from 1588" silently wins over every later one of the same level.
        if value is not None and not (2000 <= value.year <= 2100):
            raise serializers.ValidationError(_("Use a date between the years 2000 and 2100."))
        return value


class CostLedgerSerializer(serializers.ModelSerializer):
    user_email = serializers.SerializerMethodField()

    class Meta:
        model = CostLedger
        fields = [
            "id",
            "request_id",
            "created_at",
            "kind",
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "units",
            "cost",
            "currency",
            "provider_cost",
            "provider_currency",
            "usage_source",
            "user",
            "user_email",
            "wechat_account_id",
            "conversation_id",
            "sop_run_id",
            "reservation",
            "price",
        ]
        read_only_fields = fields

    def get_user_email(self, obj) -> str | None:
        return obj.user.email if obj.user_id else None


class BudgetSerializer(serializers.ModelSerializer):
    user = MemberUserField(required=False, allow_null=True)
    soft_thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=99),
        required=False,
        help_text=_("Warning thresholds in percent (the hard limit is always 100)."),
    )

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "scope",
            "user",
            "wechat_account_id",
            "money_limit",
            "token_limit",
            "currency",
            "soft_thresholds",
            "action",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class BudgetAlertSerializer(serializers.ModelSerializer):
    class Meta:
        model = BudgetAlert
        fields = [
            "id",
            "budget",
            "period",
            "threshold",
            "metric",
            "used",
            "limit",
            "percent",
            "blocked",
            "created_at",
        ]
        read_only_fields = fields


# --- usage/ ---------------------------------------------------------------------------------------
class UsageQuerySerializer(QuerySerializer):
    start = serializers.DateField(required=False, help_text=_("First local date (inclusive)."))
    end = serializers.DateField(required=False, help_text=_("Last local date (inclusive)."))
    user = serializers.IntegerField(required=False, min_value=1)
    wechat_account_id = serializers.IntegerField(required=False, min_value=1)
    kind = serializers.ChoiceField(choices=Kind.choices, required=False)

    MAX_DAYS = 366

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start and end:
            if start > end:
                raise serializers.ValidationError({"end": _("The end is before the start.")})
            if (end - start).days >= self.MAX_DAYS:
                raise serializers.ValidationError({"end": _("A report covers at most 366 days.")})
        return attrs


class _UsageSums(serializers.Serializer):
    currency = serializers.CharField()
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    units = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=24, decimal_places=10)


class UsageDaySerializer(_UsageSums):
    date = serializers.DateField()


class UsageModelSerializer(_UsageSums):
    provider = serializers.CharField()
    model = serializers.CharField()
    kind = serializers.CharField()


class UsageUserSerializer(_UsageSums):
    user_id = serializers.IntegerField(allow_null=True)
    user_email = serializers.CharField()
    user_name = serializers.CharField()


class UsageAccountSerializer(_UsageSums):
    wechat_account_id = serializers.IntegerField()


class BudgetStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="budget.id")
    name = serializers.CharField(source="budget.name")
    scope = serializers.CharField(source="budget.scope")
    user = serializers.IntegerField(source="budget.user_id", allow_null=True)
    wechat_account_id = serializers.IntegerField(source="budget.wechat_account_id", allow_null=True)
    action = serializers.CharField(source="budget.action")
    currency = serializers.CharField(source="budget.currency")
    period = serializers.CharField(source="period.key")
    period_start = serializers.DateField(source="period.start_date")
    period_end = serializers.DateField(source="period.last_date")
    money_limit = serializers.DecimalField(
        source="budget.money_limit", max_digits=18, decimal_places=4, allow_null=True
    )
    money_used = serializers.DecimalField(max_digits=24, decimal_places=10)
    money_held = serializers.DecimalField(max_digits=24, decimal_places=10)
    money_percent = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    token_limit = serializers.IntegerField(source="budget.token_limit", allow_null=True)
    tokens_used = serializers.IntegerField()
    tokens_held = serializers.IntegerField()
    token_percent = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    percent = serializers.DecimalField(max_digits=10, decimal_places=2)
    projected_money = serializers.DecimalField(
        max_digits=24,
        decimal_places=4,
        allow_null=True,
        help_text=_("Month-end money at the pace so far."),
    )
    projected_tokens = serializers.IntegerField(allow_null=True)
    blocked = serializers.BooleanField(help_text=_("True when AI calls are being refused."))


class UsageSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    timezone = serializers.CharField()
    totals = _UsageSums(many=True)
    by_day = UsageDaySerializer(many=True)
    by_model = UsageModelSerializer(many=True)
    by_user = UsageUserSerializer(many=True)
    by_account = UsageAccountSerializer(many=True)
    budgets = BudgetStatusSerializer(many=True)
