"""Signed, expiring URLs on ``PUBLIC_BASE_URL`` through which the WeChat platforms fetch media.

The platform carries no session: the URL itself is the permission, for one file, until it
expires. The signature is an HMAC (Django's ``salted_hmac`` over ``SECRET_KEY``) of the file id,
its checksum and the expiry, so a changed id, expiry or signature, or a file replaced since,
answers 403. With ``MEDIA_PLATFORM_URLS = "storage"`` and an S3-compatible storage, the storage's
own presigned URL is used instead.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from apps.media import storage
from apps.media.models import MediaFile

_SALT = "apps.media.signed-url"


def _signature(file_id: int, checksum: str, expires: int) -> str:
    return salted_hmac(_SALT, f"{file_id}:{checksum}:{expires}", algorithm="sha256").hexdigest()[
        :40
    ]


def signed_path(media: MediaFile, *, ttl: int | None = None, now: float | None = None) -> str:
    ttl = settings.MEDIA_SIGNED_URL_TTL_SECONDS if ttl is None else ttl
    expires = int((time.time() if now is None else now) + ttl)
    name = f"{media.pk}.{media.extension}" if media.extension else str(media.pk)
    return reverse(
        "media:signed",
        kwargs={
            "file_id": media.pk,
            "expires": expires,
            "signature": _signature(media.pk, media.checksum, expires),
            "name": name,
        },
    )


def platform_url(media: MediaFile, *, ttl: int | None = None) -> str:
    """The absolute URL a platform fetches ``media`` from (valid for ``ttl`` seconds)."""
    ttl = settings.MEDIA_SIGNED_URL_TTL_SECONDS if ttl is None else ttl
    if settings.MEDIA_PLATFORM_URLS == "storage":
        url = storage.presigned_url(media.storage_key, ttl)
        if url:
            return url
    return f"{settings.PUBLIC_BASE_URL}{signed_path(media, ttl=ttl)}"


def verify(*, file_id: int, expires: int, signature: str, checksum: str) -> bool:
    """True when the signature matches and has not expired."""
    if expires < time.time():
        return False
    return constant_time_compare(signature, _signature(file_id, checksum, expires))
