"""Tests: fast hasher, locmem e-mail, eager Celery for unit tests.

Integration tests (tests/integration/) start a real worker and override the eager setting.
"""

from .base import *  # noqa: F401,F403
from .base import CACHES, CHANNEL_LAYERS, VAR_DIR, env
from .dev_keys import fernet_key, read_or_create

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production-" + "x" * 20
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or [
    read_or_create(VAR_DIR / "field_encryption.key", fernet_key)
]
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Integration tests start real workers with CELERY_EAGER=0 (unit tests run tasks eagerly).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="sa-test")
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = env.str("CHANNELS_PREFIX", default="asgi-test")
LANGUAGE_CODE = "en"
# API throttles (apps/core/api/throttles.py) out of the way; tests/core/test_ops.py lowers them.
API_THROTTLE_USER_RATE = "100000/min"
API_THROTTLE_ORG_RATE = "100000/min"
API_THROTTLE_ANON_RATE = "100000/min"
# The test process is not a long-lived ASGI server: Python's own collector (apps/core/gc_tuning.py).
ASGI_GC_FREEZE_SECONDS = 0
ASGI_GC_FULL_SECONDS = 0
