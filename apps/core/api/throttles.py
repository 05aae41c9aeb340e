"""API-wide throttles, counted in Redis (the default cache) so every process shares them.

Three limits apply to every API request, each generous enough that no person or SPA reaches it
in normal work; they stop a runaway script or a compromised token:

- per user (``API_THROTTLE_USER_RATE``), keyed by the authenticated user;
- per organisation (``API_THROTTLE_ORG_RATE``), keyed by the active organisation, so one tenant's
  integrations cannot exhaust the API for everyone else;
- per client address for anonymous calls (``API_THROTTLE_ANON_RATE``).

An exceeded limit answers 429 with ``Retry-After`` in the one error shape
(``apps.core.api.exceptions``). Rates are read from settings on every request, so a deployment
(or a test) can change them without re-importing DRF.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    setting_name: str = ""

    def __init__(self):
        # SimpleRateThrottle reads its rate at construction; ours comes from settings each time.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self):
        return getattr(settings, self.setting_name, None)


class UserThrottle(_SettingsRateThrottle):
    scope = "user"
    setting_name = "API_THROTTLE_USER_RATE"

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class OrgThrottle(_SettingsRateThrottle):
    scope = "org"
    setting_name = "API_THROTTLE_ORG_RATE"

    def get_cache_key(self, request, view):
        # ``request.org`` is resolved before throttling by OrgScopedMixin.initial; views outside
        # an organisation (login, registration) are limited per user or address instead.
        org = getattr(request, "org", None) or getattr(request._request, "org", None)
        if org is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": org.pk}


class AnonThrottle(_SettingsRateThrottle):
    scope = "anon"
    setting_name = "API_THROTTLE_ANON_RATE"

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
