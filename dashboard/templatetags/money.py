"""Money on the dashboard's pages: template filters over pricing/display.py, the one place amounts are formatted.

{% load money %}
{{ summary.local_amount|money }}            Money: its own currency          R 1,234.50
{{ invoice_total|money:"USD" }}              Decimal + currency               $1,234.50
{{ wallet.balance|credits }}                 whole credits, separators        1,234,567 (0.4 under one credit)
{{ rate|plain }}                             a rate as written                18.5
Nothing that is not zero is shown as zero: the display module keeps the first significant place of a small amount.
"""

from __future__ import annotations

from django import template

from pricing import display
from pricing.money import Money

register = template.Library()

EM_DASH = "—"


def format_money(value: object, currency: str | None = None) -> str:
    """An amount in `currency` (a Money's own when not given) at the currency's minor units."""
    if not currency and not isinstance(value, Money) and value not in (None, ""):
        raise template.TemplateSyntaxError("money needs a currency: {{ amount|money:'USD' }}")
    return display.money(value, currency, missing=EM_DASH)


def format_credits(value: object) -> str:
    """Whole credits with separators; under one credit, the first significant place (never a bare 0)."""
    return display.credits(value, missing=EM_DASH)


@register.filter(name="money")
def money_filter(value: object, currency: str | None = None) -> str:
    return format_money(value, currency)


@register.filter(name="credits")
def credits_filter(value: object) -> str:
    return format_credits(value)


@register.filter(name="plain")
def plain_filter(value: object) -> str:
    """A Decimal as written, without trailing zeros or exponent: 18.500000000000 -> 18.5."""
    if value is None or value == "":
        return EM_DASH
    return display.plain(display.as_decimal(value))


@register.filter(name="units")
def units_filter(value: object) -> str:
    """A count of plan units (tokens, messages, credits) with separators; fractions only where there are some."""
    return display.units(value, missing=EM_DASH)


@register.filter(name="price")
def price_filter(value: object, currency: str) -> str:
    """A unit price, which may be finer than a cent: $0.00015, $5.00."""
    return display.price(value, currency, missing=EM_DASH)
