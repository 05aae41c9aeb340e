"""Error pages of the URL resolver for the API: JSON in the one error shape, not HTML.

An id that the route pattern does not match (``/api/v1/billing/budgets/0.5/``) never reaches a
view; Django answered its HTML 404 page, which no API client can read.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "not_found", "message": _("Not found.")}}, status=404
        )
    return defaults.page_not_found(request, exception)
