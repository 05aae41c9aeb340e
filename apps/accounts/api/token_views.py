"""The refresh endpoint with reuse detection (see ``apps.core.jwt``)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.exceptions import InvalidToken, TokenBackendError, TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.views import TokenRefreshView

from apps.core.jwt import FAMILY_CLAIM, family_revoke, family_revoked


class FamilyTokenRefreshSerializer(TokenRefreshSerializer):
    """Rotation with reuse detection: a rotated-away refresh token revokes its family."""

    def validate(self, attrs):
        from rest_framework_simplejwt.state import token_backend
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

        try:
            payload = token_backend.decode(attrs["refresh"], verify=True)
        except TokenBackendError:
            raise InvalidToken(_("Token is invalid or expired")) from None
        jti = payload.get(api_settings.JTI_CLAIM)
        family = payload.get(FAMILY_CLAIM) or jti
        if family_revoked(family):
            raise InvalidToken(_("The session has ended; sign in again."))
        if jti and BlacklistedToken.objects.filter(token__jti=jti).exists():
            family_revoke(family, exp=payload.get("exp"))
            raise InvalidToken(
                _("This refresh token was already used; the session has been ended.")
            )
        try:
            refresh = self.token_class(attrs["refresh"])
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from None
        if FAMILY_CLAIM not in refresh.payload:
            refresh[FAMILY_CLAIM] = family  # tokens issued before families existed
        attrs = {**attrs, "refresh": str(refresh)}
        try:
            return super().validate(attrs)
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from None


class FamilyTokenRefreshView(TokenRefreshView):
    serializer_class = FamilyTokenRefreshSerializer
    _serializer_class = ""
