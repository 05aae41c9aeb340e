"""The tenant base every organisation-owned model inherits."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class TimeStampedModel(models.Model):
    """Creation and update timestamps."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class OrgScopedQuerySet(models.QuerySet):
    """A queryset that is narrowed to one organisation before anything reads it."""

    def for_org(self, org) -> OrgScopedQuerySet:
        org_id = getattr(org, "pk", org)
        return self.filter(org_id=org_id)


class OrgScopedModel(TimeStampedModel):
    """A row owned by exactly one organisation (the tenant). The foreign key is always ``org``."""

    org = models.ForeignKey(
        "orgs.Organization",
        verbose_name=_("organization"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=True,
    )

    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        abstract = True
