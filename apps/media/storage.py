"""The one place media bytes are written and read: Django's storage API (``STORAGES["default"]``).

Nothing in the project may assume the local filesystem: no ``.path``, no ``open()`` of a
local directory.
The backend is chosen by settings alone (``MEDIA_STORAGE``: filesystem or s3).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from django.core.files.base import File
from django.core.files.storage import Storage, storages
from django.utils import timezone


def media_storage() -> Storage:
    # Looked up on every call (not cached at import) so settings overrides and tests can swap it.
    return storages["default"]


def new_key(*, org_id: int, extension: str) -> str:
    """An unguessable storage name, grouped by organisation and month."""
    now = timezone.now()
    suffix = f".{extension}" if extension else ""
    return f"org-{org_id}/{now:%Y/%m}/{uuid.uuid4().hex}{suffix}"


def save(key: str, content: File) -> str:
    name = media_storage().save(key, content)
    return name


def open_for_read(key: str) -> File:
    return media_storage().open(key, "rb")


def delete(key: str) -> None:
    media_storage().delete(key)


def iter_chunks(key: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    with open_for_read(key) as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def presigned_url(key: str, ttl: int) -> str | None:
    """The storage's own expiring URL (S3-compatible backends), or None when it has none."""
    storage = media_storage()
    if not getattr(storage, "querystring_auth", False):
        return None
    try:
        return storage.url(key, expire=ttl)
    except TypeError:  # a backend whose url() takes no expiry
        return None
