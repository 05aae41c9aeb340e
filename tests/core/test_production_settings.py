import os
import subprocess
import sys

from cryptography.fernet import Fernet
from django.conf import settings


def _check(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "FIELD_ENCRYPTION_KEYS"}
    }
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_its_secrets():
    result = _check({})
    assert result.returncode != 0
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "FIELD_ENCRYPTION_KEYS"):
        assert name in result.stderr


def test_production_check_deploy_is_clean():
    result = _check(
        {
            "SECRET_KEY": "k" * 30 + "-production-secret-key-for-the-check-0123456789",
            "ALLOWED_HOSTS": "sales.example.com",
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        },
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
