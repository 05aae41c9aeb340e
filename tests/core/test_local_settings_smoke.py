"""The non-test settings: every setting the code reads must exist outside config.settings.test
(a setting defined only for tests once made /readyz and the send path fail in production)."""

import os
import subprocess
import sys

from django.conf import settings

SCRIPT = """
import django, json
django.setup()
from django.test import Client
client = Client(HTTP_HOST="localhost")
print(json.dumps({"healthz": client.get("/healthz").status_code,
                  "readyz": client.get("/readyz").status_code}))
"""


def test_readyz_answers_under_the_local_settings():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "false"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    codes = result.stdout.strip().splitlines()[-1]
    # 503 is fine here (no worker or beat runs during tests); a crash (500) is not.
    assert codes in ('{"healthz": 200, "readyz": 200}', '{"healthz": 200, "readyz": 503}'), codes


def test_settings_the_code_reads_exist_in_base():
    from config.settings import base

    for name in ("CELERY_TASK_ALWAYS_EAGER", "PUBLIC_BASE_URL", "FIELD_ENCRYPTION_KEYS"):
        assert hasattr(base, name), name
