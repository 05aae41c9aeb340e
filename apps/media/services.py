"""Writes of stored media. ``media_file_create`` is the one way a file enters the storage."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.media import storage, validation
from apps.media.models import MediaFile

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024


def _spool(content: bytes | IO[bytes], limit: int) -> tuple[IO[bytes], int, str, bytes]:
    """Copy the content into a spooled temporary file while measuring and hashing it; stop as
    soon as it is over ``limit`` (nothing is stored). Returns (file, size, sha256, head)."""
    if isinstance(content, bytes | bytearray):
        validation.check_size(len(content), limit)
        return (
            ContentFile(bytes(content)),
            len(content),
            hashlib.sha256(content).hexdigest(),
            (bytes(content[: validation.SNIFF_BYTES])),
        )
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - returned
    digest = hashlib.sha256()
    size = 0
    head = b""
    if hasattr(content, "seek"):
        try:
            content.seek(0)
        except (OSError, ValueError):
            pass
    chunks = (
        content.chunks(CHUNK)
        if hasattr(content, "chunks")
        else iter(lambda: content.read(CHUNK), b"")
    )
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            spool.close()
            validation.check_size(size, limit)
        if len(head) < validation.SNIFF_BYTES:
            head += chunk[: validation.SNIFF_BYTES - len(head)]
        digest.update(chunk)
        spool.write(chunk)
    validation.check_size(size, limit)
    spool.seek(0)
    return spool, size, digest.hexdigest(), head


@transaction.atomic
def media_file_create(
    *,
    org,
    content: bytes | IO[bytes],
    name: str,
    kind: str | None = None,
    source: str = MediaFile.Source.UPLOAD,
    created_by=None,
    origin: str = "",
    max_bytes: int | None = None,
    enforce_allow_list: bool = True,
) -> MediaFile:
    """Validate and store one file; return its row.

    Refused with nothing stored: an empty file (400 ``empty_file``), one over ``max_bytes``
    (default ``MEDIA_MAX_UPLOAD_BYTES``; 413 ``too_large``), a sniffed type the ``kind`` does
    not allow (400 ``unsupported_type``). Without ``kind`` it is derived from the type. The
    name loses any directory part. ``enforce_allow_list=False`` (media received from WeChat)
    keeps any type as a ``file``: a customer's file is never refused, only served as a download.
    """
    limit = settings.MEDIA_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    if kind is not None and kind not in MediaFile.Kind.values:
        validation.check_type(None, kind)  # raises the "use one of" error
    data, size, checksum, head = _spool(content, limit)
    try:
        sniffed = validation.sniff(head)
        if kind is None:
            kind = validation.kind_for(sniffed.content_type) if sniffed else MediaFile.Kind.FILE
        if enforce_allow_list:
            validation.check_type(sniffed, kind)
        elif sniffed is None or sniffed.content_type not in validation.ALLOWED_TYPES[kind]:
            kind = MediaFile.Kind.FILE
        content_type = sniffed.content_type if sniffed else "application/octet-stream"
        extension = sniffed.extension if sniffed else ""
        media = MediaFile(
            org=org,
            kind=kind,
            original_name=validation.clean_name(name, extension),
            size=size,
            content_type=content_type,
            extension=extension[:16],
            checksum=checksum,
            storage_key=storage.new_key(org_id=org.pk, extension=extension),
            source=source,
            created_by=created_by,
            origin=origin[:200],
        )
        media.full_clean(exclude=["org", "created_by", "storage_key"])
        media.storage_key = storage.save(media.storage_key, File(data, name=media.original_name))
    finally:
        data.close()
    try:
        with transaction.atomic():
            media.save()
    except Exception:
        storage.delete(media.storage_key)  # no row, no file
        raise
    logger.info("media: stored file %s (%s, %s bytes) for org %s", media.pk, kind, size, org.pk)
    return media


def media_upload_check(*, upload, kind: str | None = None) -> str:
    """The checks ``media_file_create`` makes of an upload (size, sniffed type against the
    kind), without storing anything; for forms that validate before they save. Returns the kind
    (derived from the type when not given); raises ``ApplicationError`` like the upload would."""
    if kind and kind not in MediaFile.Kind.values:
        validation.check_type(None, kind)  # raises the "use one of" error
    validation.check_size(upload.size)
    upload.seek(0)
    head = upload.read(validation.SNIFF_BYTES)
    upload.seek(0)
    sniffed = validation.sniff(head)
    if not kind:
        kind = validation.kind_for(sniffed.content_type) if sniffed else MediaFile.Kind.FILE
    validation.check_type(sniffed, kind)
    return kind


def application_error_messages(exc: ApplicationError) -> list[str]:
    """An ``ApplicationError``'s field messages (or its message) as a list, for a form error."""
    fields = getattr(exc, "fields", None) or {}
    return [str(m) for messages in fields.values() for m in messages] or [str(exc)]


def media_kind_check(*, media: MediaFile, kind: str) -> None:
    """Refuse sending ``media`` as a message ``kind`` its type does not fit (400)."""
    if kind == MediaFile.Kind.FILE:
        return  # anything stored may be sent as a file
    if media.kind != kind:
        message = _("This file is a %(actual)s, not a %(kind)s.") % {
            "actual": media.get_kind_display(),
            "kind": kind,
        }
        raise ApplicationError(message, code="unsupported_type", fields={"media_id": [message]})
