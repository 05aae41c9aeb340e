"""HTTP responses carrying a stored file (members' view and the platforms' signed view)."""

from __future__ import annotations

from django.http import FileResponse

from apps.media import storage, validation
from apps.media.models import MediaFile


def file_response(media: MediaFile, *, cache_seconds: int = 300) -> FileResponse:
    """Stream the file. Types a browser could run (anything but images, audio, video) are
    served as a download, never sniffed, inside a sandbox."""
    inline = media.content_type in validation.INLINE_TYPES
    content_type = (
        media.content_type
        if inline or media.content_type == "application/pdf"
        else ("application/octet-stream")
    )
    response = FileResponse(
        storage.open_for_read(media.storage_key),
        content_type=content_type,
        as_attachment=not inline,
        filename=media.original_name,
    )
    response["Content-Length"] = str(media.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = f"private, max-age={cache_seconds}"
    response["ETag"] = f'"{media.checksum}"'
    return response
