"""Stored media: images, videos, voice notes and files, uploaded by members or fetched from the
WeChat platforms. The bytes live in Django's storage (``STORAGES["default"]``: the filesystem
under ``var/`` or S3-compatible object storage); a ``MediaFile`` row records what they are."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.models import OrgScopedModel


class MediaFile(OrgScopedModel):
    """One stored file of an organisation.

    ``content_type`` is sniffed from the bytes (never taken from the name or the request), and
    ``checksum`` is the SHA-256 of the bytes. ``storage_key`` is the name in the storage; it is
    never shown to users or the platforms (they get an org-checked view or a signed URL).
    """

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        VIDEO = "video", _("Video")
        VOICE = "voice", _("Voice")
        FILE = "file", _("File")

    class Source(models.TextChoices):
        UPLOAD = "upload", _("Uploaded by a member")
        INBOUND = "inbound", _("Received from WeChat")
        SOP = "sop", _("SOP campaign")
        SYSTEM = "system", _("System")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    original_name = models.CharField(_("original name"), max_length=255)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    content_type = models.CharField(_("content type"), max_length=100)
    extension = models.CharField(_("extension"), max_length=16, blank=True)
    checksum = models.CharField(_("SHA-256"), max_length=64, db_index=True)
    storage_key = models.CharField(_("storage key"), max_length=500, unique=True)
    source = models.CharField(
        _("source"), max_length=16, choices=Source.choices, default=Source.UPLOAD
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # What created it when no person did, e.g. "gewe download of message 42".
    origin = models.CharField(_("origin"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("media file")
        verbose_name_plural = _("media files")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["org", "kind", "-created_at"], name="media_org_kind")]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_inline(self) -> bool:
        """Shown in the page (image, player) rather than offered as a download."""
        return self.kind in (self.Kind.IMAGE, self.Kind.VIDEO, self.Kind.VOICE)
