"""Reads of stored media, always within one organisation."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from apps.core.exceptions import NotFoundError
from apps.media.models import MediaFile


def media_file_list(*, org) -> QuerySet[MediaFile]:
    return MediaFile.objects.for_org(org).select_related("created_by")


def media_file_get(*, org, media_file_id: int) -> MediaFile:
    """The organisation's file; another organisation's file is "not found" (404)."""
    media = MediaFile.objects.for_org(org).filter(pk=media_file_id).first()
    if media is None:
        raise NotFoundError(_("File not found."))
    return media


def media_file_get_all_orgs(*, media_file_id: int) -> MediaFile | None:
    """For the signed-URL view only: the signature, not a membership, is the permission."""
    return MediaFile.objects.filter(pk=media_file_id).first()
