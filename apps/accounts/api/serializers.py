from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.accounts.models import AuditEvent, User
from apps.orgs.models import Organization


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name"]


class MeSerializer(serializers.ModelSerializer):
    default_org = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.all(), required=False, allow_null=False
    )

    class Meta:
        model = User
        fields = ["id", "email", "name", "default_org", "date_joined"]
        read_only_fields = ["id", "email", "date_joined"]


class OrganizationBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug"]


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    name = serializers.CharField(max_length=150)
    organization_name = serializers.CharField(max_length=200)


class RegisterResponseSerializer(serializers.Serializer):
    user = UserSerializer()
    organization = OrganizationBriefSerializer()
    access = serializers.CharField()
    refresh = serializers.CharField()


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(write_only=True)
    new_password = serializers.CharField(write_only=True)

    def validate(self, attrs):
        if attrs["old_password"] == attrs["new_password"]:
            raise serializers.ValidationError(
                {"new_password": [_("The new password must differ from the current one.")]}
            )
        return attrs


class AuditEventSerializer(serializers.ModelSerializer):
    actor = UserSerializer(read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor", "target_type", "target_id", "ip", "changes", "at"]
