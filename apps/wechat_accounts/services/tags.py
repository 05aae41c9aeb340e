"""Tags."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, NotFoundError
from apps.orgs.models import Organization
from apps.wechat_accounts.models import Tag
from apps.wechat_accounts.services._common import _save

# -- tags ----------------------------------------------------------------------------------


@transaction.atomic
def tag_create(*, org: Organization, name: str, color: str = "#1677ff") -> Tag:
    if Tag.objects.filter(org=org, name=name).exists():
        raise ApplicationError(_("Invalid data."), fields={"name": [_("This tag exists.")]})
    tag = Tag(org=org, name=name, color=color)
    _save(tag)
    return tag


@transaction.atomic
def tag_update(*, org: Organization, tag_id: int, **fields: Any) -> Tag:
    tag = Tag.objects.select_for_update().filter(org=org, pk=tag_id).first()
    if tag is None:
        raise NotFoundError(_("Tag not found."))
    if (
        "name" in fields
        and Tag.objects.filter(org=org, name=fields["name"]).exclude(pk=tag.pk).exists()
    ):
        raise ApplicationError(_("Invalid data."), fields={"name": [_("This tag exists.")]})
    for name, value in fields.items():
        if name not in ("name", "color"):
            raise ApplicationError(_("Unknown field %(f)s") % {"f": name})
        setattr(tag, name, value)
    _save(tag, list(fields))
    return tag


@transaction.atomic
def tag_delete(*, org: Organization, tag_id: int) -> None:
    deleted, _d = Tag.objects.filter(org=org, pk=tag_id).delete()
    if not deleted:
        raise NotFoundError(_("Tag not found."))
