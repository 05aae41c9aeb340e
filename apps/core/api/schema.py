"""drf-spectacular hooks shared by the whole API."""

ORG_HEADER = {
    "name": "X-Organization",
    "in": "header",
    "required": False,
    "description": "Active organisation (slug or id). Defaults to the user's default organisation.",
    "schema": {"type": "string"},
}
_UNSCOPED_PREFIXES = (
    "/api/v1/auth/",
    "/api/v1/integrations/gewe/webhook",
    "/api/v1/integrations/ecloud/callback",
)


def add_organization_header(result, generator, request, public):
    """Document the ``X-Organization`` header on every organisation-scoped operation."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/") or path.startswith(_UNSCOPED_PREFIXES):
            continue
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            params = operation.setdefault("parameters", [])
            if not any(p.get("name") == "X-Organization" for p in params):
                params.append(dict(ORG_HEADER))
    return result
