from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _media_in_memory(settings):
    """Every media test runs on Django's in-memory storage: nothing may assume the filesystem
    (the storage is looked up through ``storages`` on every use)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
