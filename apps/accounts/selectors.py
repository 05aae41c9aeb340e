"""Reads of the accounts app."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import AuditEvent


def audit_event_list(*, org) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(org=org).select_related("actor")
