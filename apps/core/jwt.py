"""JWT sessions that can end: refresh-token families and a short access-token denylist.

Every login starts a *family* (claim ``fam``) that all refresh tokens rotated from it and all
their access tokens carry. Presenting a refresh token that was already rotated away means two
parties hold the session (a stolen copy): the whole family is revoked, the thief's and the
owner's tokens alike. Logout revokes the family and denylists the access token it was made
with. Both lists live in Redis and expire with the tokens they name, so they stay small.
"""

from __future__ import annotations

import time
import uuid

from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from apps.core.redis import get_redis, redis_key

FAMILY_CLAIM = "fam"


def _ttl_until(exp: int | float | None, default: float) -> int:
    if exp is None:
        return int(default)
    return max(1, int(exp - time.time()) + 1)


def family_revoke(family: str | None, *, exp: float | None = None) -> None:
    """No token of ``family`` is accepted any more (until the family's refresh tokens expire)."""
    if not family:
        return
    ttl = _ttl_until(exp, api_settings.REFRESH_TOKEN_LIFETIME.total_seconds())
    get_redis().set(redis_key("jwt", "revoked-family", family), 1, ex=ttl)


def family_revoked(family: str | None) -> bool:
    return bool(family) and bool(get_redis().exists(redis_key("jwt", "revoked-family", family)))


def access_deny(jti: str | None, *, exp: float | None) -> None:
    """Refuse the access token ``jti`` until it expires by itself."""
    if not jti:
        return
    ttl = _ttl_until(exp, api_settings.ACCESS_TOKEN_LIFETIME.total_seconds())
    get_redis().set(redis_key("jwt", "denied-access", jti), 1, ex=ttl)


def access_denied(jti: str | None) -> bool:
    return bool(jti) and bool(get_redis().exists(redis_key("jwt", "denied-access", jti)))


def new_refresh_token(user) -> RefreshToken:
    """A refresh token starting a new family (one per login)."""
    refresh = RefreshToken.for_user(user)
    refresh[FAMILY_CLAIM] = uuid.uuid4().hex
    return refresh


class FamilyJWTAuthentication(JWTAuthentication):
    """simplejwt's authentication plus the denylist and revoked families."""

    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        if access_denied(token.get(api_settings.JTI_CLAIM)) or family_revoked(
            token.get(FAMILY_CLAIM)
        ):
            raise InvalidToken(_("The session has ended; sign in again."))
        return token
