"""The platforms' view: a signed, expiring URL serves exactly one file, with no session."""

from __future__ import annotations

from django.http import HttpResponseForbidden
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
