"""Template helpers of the console: ``{{ amount|money }}``, ``{{ amount|money:"USD" }}``,
``{{ per_call_cost|money4 }}``."""

from django import template

from apps.core.money import format_money

register = template.Library()


@register.filter
def money(value, currency="CNY"):
    return format_money(value, currency or "CNY", 2)


@register.filter
def money4(value, currency="CNY"):
    return format_money(value, currency or "CNY", 4)
