"""Document the error answers every operation can give (drf-spectacular postprocessing hook).

Views answer errors in one shape (``apps.core.api.exceptions``): 400 for invalid input, 401
without valid credentials, 403 for a role below the operation's, 404 for a missing object
(another organisation's looks the same), 409 for a conflicting state change, 429 when throttled.
Only the success answers were documented, so a client (and schemathesis) could not tell an
answer the API means from a bug.
"""

from __future__ import annotations

ERROR_COMPONENT = "ErrorResponse"
ERROR_SCHEMA = {
    "type": "object",
    "description": "The one error shape of the API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Per-field messages of a validation error.",
                },
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
DESCRIPTIONS = {
    "400": "Invalid input (per-field messages in error.fields).",
    "401": "Missing or invalid credentials.",
    "403": "The role in the active organisation is not allowed to do this.",
    "404": "Not found (another organisation's object looks the same).",
    "409": "The object's state does not allow this change.",
    "429": "Too many requests; retry after the Retry-After header.",
}
WRITE_METHODS = {"post", "put", "patch", "delete"}
METHODS = WRITE_METHODS | {"get", "head", "options"}


def add_error_responses(result, generator, request, public):
    """Add the error answers an operation can give, unless it documents its own."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for _path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            codes = ["400", "401", "403", "404", "429"]
            if method in WRITE_METHODS:
                codes.append("409")
            content = {"application/json": {"schema": reference}}
            # Export endpoints render their errors with the export's renderer (CSV).
            for success in ("200", "201"):
                for media_type in (responses.get(success) or {}).get("content", {}):
                    if media_type.startswith("text/"):
                        content[media_type] = {"schema": {"type": "string"}}
            for code in codes:
                responses.setdefault(code, {"description": DESCRIPTIONS[code], "content": content})
    _times_of_day(result.get("components", {}).get("schemas", {}))
    return result


TIME_OF_DAY = {
    "type": "string",
    "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$",
    "description": "Local time of day, HH:MM[:SS].",
}


def _times_of_day(node) -> None:
    """DRF's TimeField answers ``"22:00:00"``: a local time of day. OpenAPI's ``format: time``
    (RFC 3339 full-time) demands an offset, so every answer broke its own schema."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "time":
            node.pop("format")
            for key, value in TIME_OF_DAY.items():
                node.setdefault(key, value)
        for value in node.values():
            _times_of_day(value)
    elif isinstance(node, list):
        for value in node:
            _times_of_day(value)
