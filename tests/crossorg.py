"""The shared cross-organisation test: another organisation's object answers 404.

A test class lists its viewsets' detail URLs, one line each, and inherits the test::

    class TestCrossOrg(CrossOrgCases):
        cross_org_cases = [
            ("/api/v1/tags/{pk}/", Tag),                       # a row made by ``make_row``
            ("/api/v1/sop/plans/{pk}/", lambda org: make_plan(org, [])),
        ]

Each case builds the row in ``other_org`` and checks, as a member of ``org``, that reading it
answers 404 and that changing or deleting it answers 404 (or 405 where the route has no such
method: refused before any lookup). ``tests/conftest.py`` parametrizes ``cross_org_case``
from the class.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from collections.abc import Callable

from django.db import models
from django.utils import timezone

_counter = itertools.count(1)


def make_row(model: type[models.Model], org, **values) -> models.Model:
    """A row of ``model`` in ``org`` with every required field filled; related rows are made in
    the same organisation."""
    for field in model._meta.concrete_fields:
        if field.name in values or field.attname in values or field.primary_key:
            continue
        if field.name == "org":
            values["org"] = org
        elif field.has_default() or field.null or getattr(field, "auto_now", False):
            continue
        elif getattr(field, "auto_now_add", False):
            continue
        elif field.is_relation:
            related = field.related_model
            if related._meta.label == "orgs.Organization":
                values[field.name] = org
            elif related._meta.label == "accounts.User":
                from tests.accounts.factories import UserFactory

                values[field.name] = UserFactory()
            else:
                values[field.name] = make_row(related, org)
        else:
            values[field.name] = _value(field)
    return model.objects.create(**values)


def _value(field):
    n = next(_counter)
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.IntegerField | models.FloatField):
        return 1
    if isinstance(field, models.DecimalField):
        return decimal.Decimal("1")
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return dt.date.today()
    if isinstance(field, models.TimeField):
        return dt.time(9, 0)
    if isinstance(field, models.JSONField):
        return {}
    if isinstance(field, models.URLField):
        return f"https://example.com/{n}"
    if isinstance(field, models.EmailField):
        return f"row{n}@example.com"
    if isinstance(field, models.UUIDField):
        import uuid

        return uuid.uuid4()
    return f"row-{n}"[: field.max_length or 20]


class CrossOrgCases:
    """Mixin: ``cross_org_cases`` is a list of ``(url template with {pk}, model or
    factory(org) -> row)``; every case answers 404 for another organisation's row."""

    cross_org_cases: list[tuple[str, type[models.Model] | Callable]] = []

    def test_another_orgs_object_answers_404(self, cross_org_case, api_client, other_org):
        url, make = cross_org_case
        if isinstance(make, type) and issubclass(make, models.Model):
            row = make_row(make, other_org)
        else:
            row = make(other_org)
        target = url.format(pk=row.pk)
        response = api_client.get(target)
        assert response.status_code == 404, (target, response.status_code)
        for method in ("patch", "put", "delete"):
            response = getattr(api_client, method)(target, {}, format="json")
            assert response.status_code in (404, 405), (method, target, response.status_code)
