"""OpenAPI description of ``FamilyJWTAuthentication`` (simplejwt's bearer scheme, unchanged)."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class FamilyJWTScheme(SimpleJWTScheme):
    target_class = "apps.core.jwt.FamilyJWTAuthentication"
