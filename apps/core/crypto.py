"""Symmetric encryption of secrets at rest with MultiFernet over ``FIELD_ENCRYPTION_KEYS``."""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@functools.lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: secrets cannot be encrypted.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def get_fernet() -> MultiFernet:
    return _multifernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return get_fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return get_fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS (a key was removed?)."
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a token under the first (newest) key."""
    return get_fernet().rotate(token.encode()).decode()


MASK_MIN_LENGTH = 12


def mask_secret(value: str | None) -> str:
    """Show a secret as ``****abcd``: at most its last four characters, and none at all for a
    secret shorter than ``MASK_MIN_LENGTH`` (four of nine characters would give most of it away)."""
    if not value:
        return ""
    if len(value) < MASK_MIN_LENGTH:
        return "****"
    return f"****{value[-4:]}"
