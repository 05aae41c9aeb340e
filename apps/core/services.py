"""Write helpers every app's services share."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.db import models
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError


def model_update(
    *,
    instance: models.Model,
    data: Mapping[str, Any],
    editable: Collection[str] | None = None,
) -> list[str]:
    """Apply ``data`` to ``instance``, ``full_clean()`` it and save exactly those fields (and
    ``updated_at`` when the model has one). ``editable`` is the service's one list of the
    fields a caller may change; anything else raises ``ApplicationError`` (400). A validation
    error propagates as Django's ``ValidationError`` (the API answers 400 with its fields).
    Returns the saved field names. The caller holds the row lock."""
    if editable is not None:
        unknown = set(data) - set(editable)
        if unknown:
            raise ApplicationError(
                _("These fields cannot be changed: %s") % ", ".join(sorted(unknown))
            )
    for name, value in data.items():
        setattr(instance, name, value)
    instance.full_clean()
    update_fields = list(data)
    if update_fields and any(f.name == "updated_at" for f in instance._meta.concrete_fields):
        update_fields.append("updated_at")
    if update_fields:
        instance.save(update_fields=update_fields)
    return list(data)
