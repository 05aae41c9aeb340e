"""Reads of the orgs app."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.orgs.models import Invitation, Membership, Organization


def organization_list_for_user(*, user) -> QuerySet[Organization]:
    return Organization.objects.filter(id__in=Membership.objects.filter(user=user).values("org_id"))


def membership_list(*, org) -> QuerySet[Membership]:
    return Membership.objects.filter(org=org).select_related("user")


def membership_exists(*, org, user) -> bool:
    return Membership.objects.filter(org=org, user=user).exists()


def invitation_list(*, org) -> QuerySet[Invitation]:
    return Invitation.objects.filter(org=org).select_related("invited_by")
