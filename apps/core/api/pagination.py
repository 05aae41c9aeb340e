import re

from django.utils.translation import gettext as _
from rest_framework import pagination
from rest_framework.exceptions import ValidationError

_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


class StrictPageSizeMixin:
    """``page_size`` is a whole number of 1 or more (larger than ``max_page_size`` means the
    maximum). DRF silently used the default page size for anything else (``page_size=null``),
    so a client's typo went unnoticed and the schema's ``integer`` was not what the API did."""

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not _WHOLE_NUMBER.fullmatch(raw) or int(raw) < 1:
            raise ValidationError(
                {self.page_size_query_param: [_("Use a whole number of 1 or more.")]}
            )
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 999999999}
        return parameters


class PageNumberPagination(StrictPageSizeMixin, pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


class CursorPagination(StrictPageSizeMixin, pagination.CursorPagination):
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"
