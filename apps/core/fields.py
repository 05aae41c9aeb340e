"""Model fields shared by the apps."""

from __future__ import annotations

from django.db import models

from apps.core import crypto
from apps.core.secrets import register_secret


class EncryptedTextField(models.TextField):
    """A text column that only ever holds Fernet ciphertext; Python code sees the plaintext.

    Lookups on the value are not supported (each encryption is randomised). Rotate keys with
    ``manage.py reencrypt_fields``.
    """

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        register_secret(value)
        return crypto.encrypt(value)

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        plaintext = crypto.decrypt(value)
        # Every decrypted credential is masked in this process's logs from now on.
        register_secret(plaintext)
        return plaintext
