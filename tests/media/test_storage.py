"""Storage: chosen by settings alone; nothing assumes the local filesystem."""

from __future__ import annotations

import pytest
from django.core.files.storage import InMemoryStorage, storages

from apps.media import services, storage
from tests.media import samples


@pytest.mark.django_db
def test_media_runs_on_an_in_memory_storage(org, client):
    assert isinstance(storage.media_storage(), InMemoryStorage)
    media = services.media_file_create(org=org, content=samples.pdf(), name="x.pdf")
    assert storages["default"].exists(media.storage_key)
    assert b"".join(storage.iter_chunks(media.storage_key)) == samples.pdf()


@pytest.mark.django_db
def test_filesystem_storage_by_default(org, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    media = services.media_file_create(org=org, content=samples.png(), name="x.png")
    assert (tmp_path / media.storage_key).read_bytes() == samples.png()


def test_s3_is_chosen_by_settings_alone(monkeypatch):
    """MEDIA_STORAGE=s3 and its variables configure django-storages' S3 backend (boto3 is an
    optional extra, so the settings are checked without importing the backend)."""
    import importlib

    import config.settings.base as base

    monkeypatch.setenv("MEDIA_STORAGE", "s3")
    monkeypatch.setenv("MEDIA_S3_BUCKET", "sales-media")
    monkeypatch.setenv("MEDIA_S3_ENDPOINT_URL", "https://oss-cn-hangzhou.aliyuncs.com")
    monkeypatch.setenv("MEDIA_S3_ADDRESSING_STYLE", "virtual")
    try:
        reloaded = importlib.reload(base)
        default = reloaded.STORAGES["default"]
        assert default["BACKEND"] == "storages.backends.s3.S3Storage"
        assert default["OPTIONS"]["bucket_name"] == "sales-media"
        assert default["OPTIONS"]["endpoint_url"] == "https://oss-cn-hangzhou.aliyuncs.com"
        assert default["OPTIONS"]["addressing_style"] == "virtual"
        assert default["OPTIONS"]["querystring_auth"] is True
    finally:
        monkeypatch.delenv("MEDIA_STORAGE")
        importlib.reload(base)


def test_no_media_code_touches_the_filesystem_directly():
    """The media code reaches bytes only through the storage API (no .path, no MEDIA_ROOT)."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "apps" / "media"
    for source in root.rglob("*.py"):
        text = source.read_text()
        assert "MEDIA_ROOT" not in text, source
        assert ".path(" not in text, source
