"""drf-spectacular hooks shared by the whole API."""

from django import forms
from django.core.exceptions import FieldDoesNotExist
from drf_spectacular import openapi
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from rest_framework import serializers

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


class StrictFilterExtension(DjangoFilterExtension):
    """Document what the filters check: a whole-number filter is an ``integer`` with its
    minimum and maximum (drf-spectacular called ``IdFilter`` a ``number`` without bounds), and
    an empty value of a choice filter means "any", as django-filter reads it."""

    target_class = "apps.core.api.filters.StrictDjangoFilterBackend"
    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if issubclass(filter_field.field_class, forms.IntegerField):
                schema["type"] = "integer"
                schema.pop("format", None)
            for option, keyword in (("min_value", "minimum"), ("max_value", "maximum")):
                if filter_field.extra.get(option) is not None:
                    schema[keyword] = filter_field.extra[option]
            if "enum" in schema and schema.get("type") == "string" and "" not in schema["enum"]:
                schema["enum"] = [*schema["enum"], ""]
        return parameters


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, telling more truths: a JSON field whose model default is a
    dict (or a list) is an object (an array), not "any value, null included"; a required text
    is not only spaces (DRF trims it, then finds it blank); a decimal with a minimum of 0 has
    no minus sign; and list filters are documented only where they apply (a detail URL names
    one object)."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.JSONField) and not schema.get("type"):
            default = _model_default(field)
            if isinstance(default, dict):
                schema.update(type="object", additionalProperties=True)
            elif isinstance(default, list):
                schema.update(type="array", items={})
            if "type" in schema and field.allow_null:
                schema["nullable"] = True
        if direction == "request":
            _state_text_and_decimal_rules(field, schema)
        return schema

    def get_filter_backends(self):
        if getattr(self.view, "detail", False):
            return []
        return super().get_filter_backends()


def _model_default(field):
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or not field.source or "." in field.source:
        return None
    try:
        model_field = model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return None
    default = model_field.default
    return default() if callable(default) else default


# At least one character that is not whitespace as Python's str.strip() sees it (DRF trims
# with it); spelled out because a regex's \s differs between Python and JSON Schema (ECMA).
NOT_ONLY_SPACES = (
    "[^\\t\\n\\v\\f\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def _state_text_and_decimal_rules(field, schema) -> None:
    if (
        isinstance(field, serializers.CharField)
        and not field.allow_blank
        and field.trim_whitespace
        and schema.get("type") == "string"
        and not {"pattern", "format", "enum"} & set(schema)
    ):
        schema["pattern"] = NOT_ONLY_SPACES
    if (
        isinstance(field, serializers.DecimalField)
        and field.min_value is not None
        and field.min_value >= 0
        and schema.get("pattern", "").startswith("^-?")
    ):
        schema["pattern"] = "^" + schema["pattern"][3:]
