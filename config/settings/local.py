"""Local development: the embedded defaults of `make run`."""

from .base import *  # noqa: F401,F403
from .base import ALLOWED_HOSTS, FIELD_ENCRYPTION_KEYS, SECRET_KEY, VAR_DIR, env
from .dev_keys import fernet_key, read_or_create, secret_key

DEBUG = env.bool("DEBUG", default=True)
SERVE_STATIC = env.bool("SERVE_STATIC", default=True)
SECRET_KEY = SECRET_KEY or read_or_create(VAR_DIR / "secret_key", secret_key)
FIELD_ENCRYPTION_KEYS = FIELD_ENCRYPTION_KEYS or [
    read_or_create(VAR_DIR / "field_encryption.key", fernet_key)
]
ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]", "testserver"]
