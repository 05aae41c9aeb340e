"""Pages of the conversation list whose total is counted only so far.

An exact ``COUNT(*)`` reads every matching conversation; a frequent search term over a large
organisation made it the slowest part of the list (bench/workspace). The workspace never shows
the list's total (the view counts come from ``conversations/counts/``), so the list counts at
most ``count_limit`` rows, or up to the row after the requested page when that is further:
``count`` is exact when ``count_exact`` is true, and a lower bound ("1,000 or more") when it
is false. ``next`` is right either way; ``page=last`` counts every row.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from rest_framework.response import Response

from apps.core.api.pagination import PageNumberPagination


class CountLimitedPaginator(Paginator):
    """A paginator whose ``count`` stops at ``limit`` (``exact`` says whether it did)."""

    def __init__(self, object_list, per_page, *, limit: int | None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.limit = limit  # None: count them all
        self.exact = True

    @cached_property
    def count(self) -> int:
        # COUNT over "SELECT id ... LIMIT n": no ordering, joins or annotations to compute.
        rows = self.object_list.order_by().values("pk")
        if self.limit is None:
            return rows.count()
        counted = rows[: self.limit + 1].count()
        if counted > self.limit:
            self.exact = False
            return self.limit
        return counted


class ConversationPagination(PageNumberPagination):
    count_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        page_size = self.get_page_size(request)
        raw = request.query_params.get(self.page_query_param) or "1"
        number = int(raw) if raw.isdigit() and len(raw) <= 9 else 1
        # Enough rows to know the requested page and whether another follows it; all of them
        # for ``page=last``.
        self.limit = max(self.count_limit, number * page_size + 1)
        if raw in self.last_page_strings:
            self.limit = None
        return super().paginate_queryset(queryset, request, view)

    def django_paginator_class(self, object_list, per_page):  # DRF builds its paginator here
        return CountLimitedPaginator(object_list, per_page, limit=self.limit)

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.page.paginator.count,
                "count_exact": self.page.paginator.exact,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        properties = schema["properties"]
        properties["count"]["description"] = "Exact when count_exact, else a lower bound."
        properties["count_exact"] = {"type": "boolean", "example": True}
        schema["required"] = [*schema.get("required", []), "count_exact"]
        return schema
