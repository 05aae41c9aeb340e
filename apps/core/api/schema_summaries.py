"""OpenAPI post-processing for people: operations grouped by a readable tag per area (in the
request's language) and a one-line summary on every operation that has none.

The tag of an operation is the first path segment after ``/api/v1/`` (``conversations``,
``wechat-accounts`` ...), shown by its label below; the summary is built from the method and
the path ("List conversations" / "会话列表"), unless the view set one with ``extend_schema``.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

TAGS = {
    "auth": gettext_lazy("Sign-in and account"),
    "orgs": gettext_lazy("Organisations and members"),
    "audit-events": gettext_lazy("Audit log"),
    "integrations": gettext_lazy("AI and integrations"),
    "billing": gettext_lazy("Costs"),
    "wechat-accounts": gettext_lazy("WeChat accounts"),
    "contacts": gettext_lazy("Contacts"),
    "groups": gettext_lazy("WeChat groups"),
    "tags": gettext_lazy("Tags"),
    "friend-requests": gettext_lazy("Friend requests"),
    "moments": gettext_lazy("Moments"),
    "conversations": gettext_lazy("Conversations"),
    "canned-replies": gettext_lazy("Canned replies"),
    "drafts": gettext_lazy("AI drafts"),
    "media": gettext_lazy("Media files"),
    "sop": gettext_lazy("SOP campaigns"),
    "monitoring": gettext_lazy("Monitoring and alerts"),
    "notifications": gettext_lazy("Notifications"),
    "notification-webhooks": gettext_lazy("Notification webhooks"),
    "reports": gettext_lazy("Reports"),
    "websocket": gettext_lazy("WebSocket connections"),
}

_ID = re.compile(r"^\{[^}]+\}$")


def _resource(parts: list[str]) -> str:
    words = [p for p in parts if not _ID.match(p)]
    return " ".join(w.replace("-", " ").replace("_", " ") for w in words[-1:]) or ""


def summary_for(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p][2:]  # drop "api", "v1"
    if not parts:
        return ""
    on_item = bool(_ID.match(parts[-1]))
    resource = _resource(parts)
    method = method.lower()
    if method == "get":
        template = _("%(resource)s: details") if on_item else _("%(resource)s: list")
    elif method == "post":
        template = _("%(resource)s: create") if not on_item and len(parts) == 1 else None
        if template is None:
            template = _("%(resource)s: run")
    elif method == "put":
        template = _("%(resource)s: replace")
    elif method == "patch":
        template = _("%(resource)s: change")
    elif method == "delete":
        template = _("%(resource)s: delete")
    else:
        return ""
    label = TAGS.get(resource.replace(" ", "-"))
    return template % {"resource": str(label) if label else resource}


def add_tags_and_summaries(result, generator, request, public):
    used = {}
    for path, operations in result.get("paths", {}).items():
        parts = [p for p in path.split("/") if p]
        key = parts[2] if len(parts) > 2 and parts[:2] == ["api", "v1"] else ""
        label = str(TAGS.get(key, key.replace("-", " ").capitalize())) if key else ""
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if label:
                operation["tags"] = [label]
                used[label] = key
            if not operation.get("summary"):
                summary = summary_for(method, path)
                if summary:
                    operation["summary"] = summary
    result["tags"] = [
        {"name": label}
        for label in sorted(
            used, key=lambda t: list(TAGS).index(used[t]) if used[t] in TAGS else 99
        )
    ]
    return result
