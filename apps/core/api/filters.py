"""Filters shared by the apps' list endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django import forms
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from rest_framework.exceptions import ValidationError

MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """Filter by a related object's id as a plain number.

    A ``ModelChoiceFilter`` (what ``filterset_fields`` makes of a foreign key) looks the id up
    among every organisation's rows: another organisation's id answered 200 and a missing one
    400, which told an outsider which ids exist. A plain id filter answers both the same way
    (an empty page); out-of-range numbers answer 400 instead of overflowing the database.
    """

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


BOOLEAN_VALUES = {"true", "false", "1", "0"}


class StrictDjangoFilterBackend(DjangoFilterBackend):
    """django-filter's backend, but a boolean filter given anything other than true/false
    answers 400 (django-filter read ``?is_active=maybe`` as "no filter" and listed every row,
    while the schema says ``boolean``), and date-times are compared in UTC."""

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        errors = {}
        for name, filter_field in filterset.filters.items():
            if not isinstance(filter_field, django_filters.BooleanFilter):
                continue
            value = request.query_params.get(name)
            if value not in (None, "") and value.lower() not in BOOLEAN_VALUES:
                errors[name] = [_("Use true or false.")]
        if errors:
            raise ValidationError(errors)
        return filterset

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid() and self.raise_exception:
            raise translate_validation(filterset.errors)
        cleaned = filterset.form.cleaned_data
        for name, value in cleaned.items():
            # In UTC: ISO-8601 allows offsets up to +-23:59, PostgreSQL only +-15:59 (a 500).
            if isinstance(value, datetime) and value.tzinfo is not None:
                try:
                    cleaned[name] = value.astimezone(UTC)
                except OverflowError as exc:
                    raise ValidationError({name: [_("Enter a valid date/time.")]}) from exc
        return filterset.qs
