"""Money on the dashboard: Decimal amounts formatted for a currency, rounded once, half up, never through a float.

{% load money %}
{{ summary.local_amount|money }}            Money: its own currency          R 1,234.50
{{ invoice_total|money:"USD" }}              Decimal + currency               $1,234.50
{{ wallet.balance|credits }}                 whole credits, separators        1,234,567
{{ rate|plain }}                             a rate as written                18.5
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

from pricing.money import CREDITS, Money, minor_units, to_decimal

register = template.Library()

# Symbols for the display currencies people read most; any other currency is written after the amount by its code.
SYMBOLS: dict[str, str] = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "ZAR": "R\u00a0",
    "JPY": "¥",
    "INR": "₹",
    "NGN": "₦",
    "KRW": "₩",
    "BRL": "R$\u00a0",
}


PRICE_PLACES = 6


def _amount(value: object) -> Decimal:
    if isinstance(value, Money):
        return value.amount
    return to_decimal(value)  # a float is refused here, as everywhere money is handled


def group_thousands(amount: Decimal, places: int) -> str:
    """`amount` rounded half up to `places` decimals, with comma thousands separators: -1234567.891 -> -1,234,567.89."""
    exponent = Decimal(1).scaleb(-places)
    rounded = amount.quantize(exponent, rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # never "-0.00"
    return f"{rounded:,.{places}f}"


def format_money(value: object, currency: str | None = None) -> str:
    """An amount for display in `currency` (a Money's own when not given): its minor units, symbol or code."""
    if value is None or value == "":
        return "—"
    if isinstance(value, Money):
        currency = currency or value.currency
    if not currency:
        raise template.TemplateSyntaxError("money needs a currency: {{ amount|money:'USD' }}")
    currency = currency.upper()
    amount = _amount(value)
    if currency == CREDITS:
        return format_credits(amount)
    text = group_thousands(abs(amount), minor_units(currency))
    sign = "-" if amount < 0 and text.strip("0.,") else ""
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text}\u00a0{currency}"


def format_credits(value: object) -> str:
    """Whole credits with thousands separators (display only: the ledger keeps 12 decimal places)."""
    if value is None or value == "":
        return "—"
    return group_thousands(_amount(value), 0)


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
        return "—"
    return f"{_amount(value).normalize():f}"


@register.filter(name="units")
def units_filter(value: object) -> str:
    """A count of plan units (tokens, messages, credits) with separators; fractions only where there are some."""
    if value is None or value == "":
        return "—"
    amount = _amount(value)
    if amount == amount.to_integral_value():
        return group_thousands(amount, 0)
    return group_thousands(amount, 2)


@register.filter(name="price")
def price_filter(value: object, currency: str) -> str:
    """A unit price, which may be finer than a cent: $0.00015, $5.00 (at least the currency's minor units, then as
    many decimals as the price has, rounded half up at PRICE_PLACES)."""
    if value is None or value == "":
        return "—"
    amount = _amount(value).quantize(Decimal(1).scaleb(-PRICE_PLACES), rounding=ROUND_HALF_UP)
    places = max(minor_units(currency.upper()), -min(amount.normalize().as_tuple().exponent, 0))  # type: ignore[operator]
    text = group_thousands(abs(amount), places)
    symbol = SYMBOLS.get(currency.upper())
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text}\u00a0{currency.upper()}"
