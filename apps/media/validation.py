"""What an upload may be: the type sniffed from its bytes, per kind allow-lists, the size limit,
and a clean display name. Nothing here touches the storage or the database."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError

SNIFF_BYTES = 8192


class MediaTooLargeError(ApplicationError):
    """The file is over the configured limit (answers 413)."""

    status_code = 413
    code = "too_large"


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    extension: str


# WeChat voice notes are SILK v3 (optionally with a leading 0x02 byte); `filetype` knows AMR but
# not SILK.
_SILK = (b"#!SILK_V3", b"\x02#!SILK_V3")

IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
VIDEO_TYPES = {"video/mp4", "video/quicktime", "video/x-m4v"}
VOICE_TYPES = {"audio/silk", "audio/amr", "audio/mpeg", "audio/mp4", "audio/aac", "audio/x-wav"}
DOCUMENT_TYPES = {
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
    "application/epub+zip",
    "application/zip",
    "application/x-rar-compressed",
    "application/x-7z-compressed",
    "application/gzip",
    "text/plain",
}
# Per kind of message: what the sniffed type may be. A "file" may be any document, archive or
# media file, never an executable or an unknown binary.
ALLOWED_TYPES: dict[str, set[str]] = {
    "image": IMAGE_TYPES,
    "video": VIDEO_TYPES,
    "voice": VOICE_TYPES,
    "file": DOCUMENT_TYPES | IMAGE_TYPES | VIDEO_TYPES | VOICE_TYPES,
}
# Types a browser may render inline from our origin; everything else is served as a download.
INLINE_TYPES = IMAGE_TYPES | VIDEO_TYPES | {"audio/mpeg", "audio/mp4", "audio/aac", "audio/x-wav"}
KIND_OF_TYPE = (
    [(t, "image") for t in IMAGE_TYPES]
    + [(t, "video") for t in VIDEO_TYPES]
    + [(t, "voice") for t in VOICE_TYPES]
)

_EXTENSIONS = {"audio/silk": "silk", "text/plain": "txt", "audio/x-wav": "wav"}


def sniff(head: bytes) -> Sniffed | None:
    """The type of a file from its first bytes, or None when it is not recognised."""
    if head.startswith(_SILK):
        return Sniffed("audio/silk", "silk")
    kind = filetype.guess(head[:SNIFF_BYTES]) if head else None
    if kind is not None:
        return Sniffed(kind.mime, _EXTENSIONS.get(kind.mime, kind.extension))
    if _looks_like_text(head):
        return Sniffed("text/plain", "txt")
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    sample = head[:SNIFF_BYTES]
    for encoding in ("utf-8", "gb18030"):
        try:
            # A multi-byte character may be cut at the end of the sample.
            text = sample.decode(
                encoding, errors="strict" if len(head) <= SNIFF_BYTES else "ignore"
            )
        except UnicodeDecodeError:
            continue
        controls = sum(
            1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\r\n\t\f"
        )
        return controls == 0
    return False


def kind_for(content_type: str) -> str:
    """The message kind a type is sent as when the caller does not say."""
    return dict(KIND_OF_TYPE).get(content_type, "file")


def check_size(size: int, max_bytes: int | None = None) -> None:
    """Refuse an empty file (400) or one over the limit (413)."""
    limit = settings.MEDIA_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    if size <= 0:
        raise ApplicationError(
            _("The file is empty."), code="empty_file", fields={"file": [_("The file is empty.")]}
        )
    if size > limit:
        message = _("The file is larger than %(limit)s.") % {"limit": filesizeformat(limit)}
        raise MediaTooLargeError(message, fields={"file": [message]})


def check_type(sniffed: Sniffed | None, kind: str) -> None:
    """Refuse a type the kind does not allow (400)."""
    allowed = ALLOWED_TYPES.get(kind)
    if allowed is None:
        message = _("Use one of: %(kinds)s.") % {"kinds": ", ".join(ALLOWED_TYPES)}
        raise ApplicationError(message, code="invalid", fields={"kind": [message]})
    if sniffed is None or sniffed.content_type not in allowed:
        found = sniffed.content_type if sniffed else _("unknown")
        message = _("This file type (%(found)s) is not allowed for %(kind)s.") % {
            "found": found,
            "kind": kind,
        }
        raise ApplicationError(message, code="unsupported_type", fields={"file": [message]})


_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"|?*]")


def clean_name(name: str, extension: str = "") -> str:
    """A display name without any directory part, control or reserved characters; never empty.

    ``../../etc/passwd`` becomes ``passwd``, ``C:\\Users\\me\\报价单.pdf`` becomes ``报价单.pdf``.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("", name).strip().lstrip(".").strip()
    if not name:
        name = "file" + (f".{extension}" if extension else "")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else name[:200]
    return name
