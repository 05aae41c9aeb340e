"""Development-only secrets generated once under ``var/`` (never used by production)."""

from __future__ import annotations

from pathlib import Path


def read_or_create(path: Path, factory) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def secret_key() -> str:
    import secrets

    return secrets.token_urlsafe(50)
