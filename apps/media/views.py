"""The platforms' view: a signed, expiring URL serves exactly one file, with no session."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_GET

from apps.media import selectors, signing
from apps.media.serving import file_response


@require_GET
def signed_file(request, file_id: int, expires: int, signature: str, name: str):
    media = selectors.media_file_get_all_orgs(media_file_id=file_id)
    # Unknown, tampered and expired all look the same: 403 without a body that tells which.
    if media is None or not signing.verify(
        file_id=file_id, expires=expires, signature=signature, checksum=media.checksum
    ):
        return HttpResponseForbidden("forbidden", content_type="text/plain")
    return file_response(media, cache_seconds=0)


def _placeholder_png() -> bytes:
    """A 96x96 neutral grey PNG (made once, in code): the cover of a video sent without one."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    size = 96
    raw = b"".join(b"\x00" + b"\xb0\xb0\xb0" * size for _ in range(size))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


_PLACEHOLDER = _placeholder_png()


@require_GET
def video_cover(request):
    """The public cover image of videos sent without a thumbnail (GeWe needs a thumbUrl)."""
    response = HttpResponse(_PLACEHOLDER, content_type="image/png")
    response["Cache-Control"] = "public, max-age=86400"
    return response
