"""``{% reports_dashboard_card %}``: the reports card of the console's home dashboard.

A template tag rather than a call from the dashboard's Python, so no app imports reports (it
sits above every other app)."""

from __future__ import annotations

from django import template

from apps.core.console import console_membership
from apps.reports.selectors import dashboard_block

register = template.Library()


@register.inclusion_tag("admin/reports/dashboard_block.html", takes_context=True)
def reports_dashboard_card(context) -> dict:
    request = context.get("request")
    membership = console_membership(request) if request is not None else None
    if membership is None:
        return {"r": None}
    block = dashboard_block(org=membership.org, user_id=request.user.pk, role=membership.role)
    return {"r": block}
