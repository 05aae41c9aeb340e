"""Form widgets of the console for values that used to be raw JSON.

- ``TagInputWidget``: a list of short texts (keywords, phone numbers) edited as chips; without
  JavaScript it is a textarea with one entry per line (``static/app/tag_input.js`` enhances it).
- ``ContactPickerWidget`` / ``IdListField``: a list of row ids picked with a searching select
  (Django admin's select2 + ``admin/js/autocomplete.js``), fed by the console's scoped search
  endpoint ``console_search`` (organisation of the request only).
"""

from __future__ import annotations

import json

from django import forms
from django.apps import apps
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _
from unfold.widgets import INPUT_CLASSES

SELECT2_JS = (
    "admin/js/vendor/jquery/jquery.min.js",
    "admin/js/vendor/select2/select2.full.min.js",
    "admin/js/jquery.init.js",
    "admin/js/autocomplete.js",
)
SELECT2_CSS = ("admin/css/vendor/select2/select2.min.css", "admin/css/autocomplete.css")


class TagInputWidget(forms.Textarea):
    template_name = "core/widgets/tag_input.html"

    class Media:
        js = ("app/tag_input.js",)

    def __init__(self, attrs=None):
        base = {
            "rows": 3,
            "data-tag-input": "1",
            "data-placeholder": _("Type and press Enter"),
            "class": " ".join(INPUT_CLASSES),
        }
        super().__init__({**base, **(attrs or {})})

    def format_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        if isinstance(value, str) and value.startswith("["):
            try:
                return "\n".join(str(v) for v in json.loads(value))
            except ValueError:
                return value
        return value


class ContactPickerWidget(forms.SelectMultiple):
    """A searching multi-select over one model of the request's organisation."""

    def __init__(self, *, model_label: str, attrs=None, choices=()):
        self.model_label = model_label
        super().__init__(attrs, choices)

    @property
    def media(self):
        return forms.Media(js=SELECT2_JS, css={"screen": SELECT2_CSS})

    def optgroups(self, name, value, attrs=None):
        # Only the selected rows are rendered; the rest come from the search endpoint.
        selected = [v for v in value if v not in ("", None)]
        queryset = getattr(self.choices, "queryset", None)
        if queryset is None or not selected:
            return []
        return [
            (None, [self.create_option(name, row.pk, str(row), True, index)], index)
            for index, row in enumerate(queryset.filter(pk__in=selected))
        ]

    def build_attrs(self, base_attrs, extra_attrs=None):
        attrs = super().build_attrs(base_attrs, extra_attrs)
        attrs.setdefault("class", "")
        attrs["class"] += " admin-autocomplete"
        attrs.update(
            {
                "data-ajax--cache": "true",
                "data-ajax--delay": 250,
                "data-ajax--type": "GET",
                "data-ajax--url": str(reverse_lazy("admin:console_search")),
                "data-app-label": self.model_label.split(".")[0],
                "data-model-name": self.model_label.split(".")[1].lower(),
                "data-field-name": "id",
                "data-theme": "admin-autocomplete",
                "data-allow-clear": "false",
                "data-placeholder": _("Search by name"),
                "lang": "zh-CN",
                "style": "width: 100%",
            }
        )
        return attrs


class IdListField(forms.ModelMultipleChoiceField):
    """Ids of rows of ``model_label`` (a JSON list in the database), picked by search. Call
    ``set_org(org)`` so only that organisation's rows are valid choices."""

    def __init__(self, *, model_label: str, **kwargs):
        model = apps.get_model(model_label)
        kwargs.setdefault("widget", ContactPickerWidget(model_label=model_label))
        super().__init__(queryset=model.objects.none(), **kwargs)
        self.model = model

    def set_org(self, org) -> None:
        self.queryset = self.model.objects.filter(org=org)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return [v.pk if hasattr(v, "pk") else v for v in value]
        return super().prepare_value(value)

    def clean(self, value):
        rows = super().clean(value)
        return [row.pk for row in rows] if rows is not None else []


def id_list_field(declaration, **kwargs) -> IdListField:
    return IdListField(model_label=declaration.model, **kwargs)
