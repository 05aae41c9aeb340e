"""Keep credentials out of stored text and logs.

Two guards:

* ``redact(text, secrets)`` replaces every given secret (and every secret this process has seen,
  see below) by its masked form. Provider clients apply it to the error text a platform sends
  back (GeWe echoes ``X-GEWE-TOKEN=<token> 不可用或已过期``), so the text that reaches
  ``status_detail``, health samples, alerts, notifications, API answers and logs carries no
  credential.
* ``SecretMaskingFilter`` is installed on every log handler and applies the same replacement to
  every formatted record, traceback included, as a second line of defence.

The process learns secrets as they are decrypted (``EncryptedTextField``) or handed to a client
(``register_secret``). The registry is bounded and lives in memory only: it never stores a secret
anywhere a dump could find it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

from apps.core.crypto import mask_secret

# Shorter values are too likely to occur in ordinary text (ids, words) to be masked blindly.
MIN_SECRET_LENGTH = 8
MAX_KNOWN_SECRETS = 2000

_known: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret so that logs and redacted texts never show it."""
    if not value or not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _known[value] = None
        _known.move_to_end(value)
        while len(_known) > MAX_KNOWN_SECRETS:
            _known.popitem(last=False)


def known_secrets() -> list[str]:
    with _lock:
        return list(_known)


def _mask(value: str) -> str:
    return mask_secret(value) or "****"


def redact(text: str, secrets: Iterable[str | None] = (), *, known: bool = True) -> str:
    """``text`` with every secret of ``secrets`` (and, with ``known``, every registered secret)
    replaced by its masked form. Longer secrets go first so that a secret containing another
    is replaced whole."""
    if not text or not isinstance(text, str):
        return text
    candidates = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
    if known:
        candidates.update(known_secrets())
    for secret in sorted(candidates, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _mask(secret))
    return text


class SecretMaskingFilter(logging.Filter):
    """Mask every known secret in a log record's message and traceback (second guard)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the handler's problem
            return True
        masked = redact(message)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def url_secrets(url: str | None) -> list[str]:
    """The parts of a webhook URL that act as its credential: every query value
    (``access_token``, ``key``, ``sign``) and long path segments (Feishu's hook id)."""
    from urllib.parse import parse_qsl, urlsplit

    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    values = [value for _name, value in parse_qsl(parts.query, keep_blank_values=False)]
    values += [segment for segment in parts.path.split("/") if len(segment) >= 16]
    return [v for v in values if len(v) >= MIN_SECRET_LENGTH] + [url]


def mask_url(url: str | None) -> str:
    """``url`` with its credential parts masked, for display and logs."""
    return redact(url or "", url_secrets(url)[:-1], known=False)
