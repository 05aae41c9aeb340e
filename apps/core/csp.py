"""Content-Security-Policy for every page (django-csp), strictest where the page allows it.

No page loads anything from another origin except images (customers' WeChat avatars come from
WeChat's CDN); nothing may frame a page. The admin console needs inline scripts and ``eval``
because its theme (django-unfold) runs Alpine.js, whose expressions are compiled at run time, and
Django's admin and Swagger UI keep small inline scripts. The agent workspace needs neither, so
its pages run with ``script-src 'self'`` only: an injected ``<script>`` or ``onclick`` there does
not run, and that is the page where customers' text is shown all day.
"""

from __future__ import annotations

from csp.constants import SELF
from csp.middleware import CSPMiddleware

STRICT_SCRIPT_PREFIXES = ("/workspace/",)


class ProjectCSPMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False):
        if not report_only and request.path_info.startswith(STRICT_SCRIPT_PREFIXES):
            replace = dict(getattr(response, "_csp_replace", None) or {})
            replace.setdefault("script-src", [SELF])
            response._csp_replace = replace
        return super().get_policy_parts(request, response, report_only=report_only)
