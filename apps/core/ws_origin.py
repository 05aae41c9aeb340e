"""Which WebSocket handshakes may reach the consumers, by their ``Origin`` header.

Every socket of this product authenticates with a token (a JWT in ``?token=`` or the first
message, or the short-lived token a same-origin page fetches with its session): the browser's
cookies never authenticate a socket on their own. So:

- **no Origin header** (mobile apps, scripts, server-side integrations): accepted here; the
  consumer then requires a valid token (close code 4401 otherwise). Token auth is not exposed to
  cross-site hijacking, because another site cannot read the token.
- **an Origin header**: it must be one of the site's own hosts (``ALLOWED_HOSTS``) or an allowed
  SPA origin (``CORS_ALLOWED_ORIGINS``, the same list the HTTP API uses). A page on any other
  site is refused with 403 before any consumer runs, even with a token.

The lists are read on every handshake, so settings changes (and tests) apply at once.
"""

from __future__ import annotations

from channels.security.websocket import OriginValidator
from django.conf import settings


class TokenAwareOriginValidator(OriginValidator):
    def __init__(self, application):
        super().__init__(application, allowed_origins=[])

    @property
    def allowed_origins(self):
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            hosts = [".localhost", "127.0.0.1", "[::1]"]
        return [*hosts, *getattr(settings, "CORS_ALLOWED_ORIGINS", [])]

    @allowed_origins.setter
    def allowed_origins(self, value):  # the base class assigns it in __init__
        pass

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)
