"""Serializer helpers shared by the apps."""

from __future__ import annotations

from django.utils.translation import gettext
from rest_framework import serializers

from apps.core.crypto import mask_secret


class OrgScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A related field that only accepts objects of the request's organisation.

    An id of another organisation's object is reported exactly like a missing one.
    """

    def get_queryset(self):
        queryset = super().get_queryset()
        org = self.context.get("org")
        if org is None:
            return queryset.none()
        return queryset.filter(org=org)


class SecretField(serializers.CharField):
    """Write-only plaintext in, masked value out (``sk-...abcd``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return mask_secret(value)


class QuerySerializer(serializers.Serializer):
    """Validates query parameters. DRF reads an empty form value of an optional field as
    "not given" (``?window=`` meant the default window), which the schema, saying the value is
    one of an enum or an integer, does not allow: an empty value answers 400 instead, unless
    the field allows blanks."""

    def to_internal_value(self, data):
        errors = {
            name: [gettext("This field may not be blank.")]
            for name, field in self.fields.items()
            if not field.read_only
            and data.get(name) == ""
            and not getattr(field, "allow_blank", False)
        }
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
