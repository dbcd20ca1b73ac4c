from decimal import Decimal

from django import template

from copier.core.sizing import fmt

register = template.Library()


@register.filter
def num(value: Decimal | None) -> str:
    """A decimal as traders write it: 10, 0.5, 1.0852 (never 1E+1 or 0.50000000)."""
    if value is None or value == "":
        return ""
    return fmt(Decimal(value))
