"""Filters shared by the apps' list endpoints."""

from __future__ import annotations

import django_filters
from django import forms

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
