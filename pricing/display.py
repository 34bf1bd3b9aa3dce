"""Money and decimals as people read them: the console, the admin, the dashboard and emails all show amounts here.

Display only. The API writes decimals through `core.decimals` and CSV files carry stored amounts unrounded; what a
function here returns is never read back as a number.

Rules every function follows:
- rounding happens once, half up, at the places the function names; the stored amount is never changed;
- an amount that is not zero never looks like zero: when the places asked for would show 0.00 (or 0), the amount
  is shown to its first significant place instead (0.004 USD at two places is "$0.004", not "$0.00");
- a minus sign comes before the symbol (-$1.50), and zero is never shown as "-0";
- a missing value (None) is shown as `missing` (each surface has its own: "-", "—" or an empty cell).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from pricing.money import CREDITS, Money, minor_units, to_decimal

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
# The stored precision (12 places): no amount has a significant place beyond it.
MAX_PLACES = 12
# A unit price is rounded at this many places (finer than any price the catalog holds per unit).
PRICE_PLACES = 6
DASH = "-"


def as_decimal(value: object) -> Decimal:
    """A Money's amount, or the number itself; a float is refused, as everywhere money is handled."""
    return value.amount if isinstance(value, Money) else to_decimal(value)


def visible_places(amount: Decimal, places: int) -> int:
    """`places`, or more when `amount` rounded to `places` would read as zero although it is not."""
    if amount == 0 or amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) != 0:
        return places
    first_significant = -amount.adjusted()  # 0.004 -> 3
    return min(max(places, first_significant), MAX_PLACES)


def grouped_fixed(amount: Decimal, places: int) -> str:
    """`amount` rounded half up to `places` (more where it would read as zero), with thousands separators."""
    places = visible_places(amount, places)
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # never "-0.00"
    return f"{rounded:,.{places}f}"


def plain(value: Decimal | None, *, missing: str = "", signed: bool = False) -> str:
    """Exactly as stored, without the padding of its stored places: 0.150000000000 -> 0.15, 10000.00 -> 10000.
    `signed` writes a plus before a positive amount (+12.5), as a ledger's movements are read. A missing value is
    an empty form field or CSV cell unless `missing` says otherwise."""
    if value is None:
        return missing
    text = format(value.normalize(), "f") if value else "0"
    return f"+{text}" if signed and value > 0 else text


def grouped(value: Decimal | None, *, missing: str = DASH) -> str:
    """Exactly as stored, with thousands separators and no padding: 10000 -> 10,000, 18.50 -> 18.5."""
    if value is None:
        return missing
    return format(value.normalize(), ",f") if value else "0"


def figure(value: Decimal | None, places: int, *, missing: str = DASH) -> str:
    """A figure rounded half up to `places` with separators: 1234.5 at 2 -> 1,234.50."""
    return missing if value is None else grouped_fixed(value, places)


def _with_symbol(amount: Decimal, text: str, currency: str) -> str:
    sign = "-" if amount < 0 and text.strip("0.,") else ""
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text}\u00a0{currency}"


def usd(value: Decimal | None, places: int = 2, *, missing: str = DASH) -> str:
    """US dollars at `places`: $1,234.50, -$0.25, $0.0004 (a fraction of a cent keeps its first significant place)."""
    if value is None:
        return missing
    return _with_symbol(value, grouped_fixed(abs(value), places), "USD")


def money(value: object, currency: str | None = None, *, missing: str = "—") -> str:
    """An amount in `currency` (a Money's own when not given) at the currency's minor units, with its symbol or
    code: $1,234.50, R 18.50, 12.00 CHF; credits are whole credits (see `credits`)."""
    if value is None or value == "":
        return missing
    if isinstance(value, Money):
        currency = currency or value.currency
    if not currency:
        raise ValueError("an amount without a currency cannot be shown as money")
    currency = currency.upper()
    amount = as_decimal(value)
    if currency == CREDITS:
        return credits(amount, missing=missing)
    return _with_symbol(amount, grouped_fixed(abs(amount), minor_units(currency)), currency)


def money_text(amount: Money) -> str:
    """Money at its currency's minor unit, grouped, without a symbol: 50,000 (credits), 92.50 (ZAR)."""
    return grouped_fixed(amount.amount, minor_units(amount.currency))


def credits(value: object, places: int = 0, *, missing: str = "—") -> str:
    """Credits for a person: whole credits with separators by default (1,234,567); a balance under one credit
    shows its first significant place (0.4), never 0. The ledger keeps 12 places: use `plain` for those."""
    if value is None or value == "":
        return missing
    return grouped_fixed(as_decimal(value), places)


def units(value: object, *, missing: str = "—") -> str:
    """A count of plan units (tokens, messages, credits) with separators; fractions only where there are some."""
    if value is None or value == "":
        return missing
    amount = as_decimal(value)
    return grouped_fixed(amount, 0 if amount == amount.to_integral_value() else 2)


def price(value: object, currency: str, *, missing: str = "—") -> str:
    """A unit price, which may be finer than a cent: $0.00015, $5.00 (at least the currency's minor units, then as
    many places as the price has, rounded half up at PRICE_PLACES)."""
    if value is None or value == "":
        return missing
    currency = currency.upper()
    raw = as_decimal(value)
    amount = raw.quantize(Decimal(1).scaleb(-visible_places(raw, PRICE_PLACES)), rounding=ROUND_HALF_UP)
    exponent = amount.normalize().as_tuple().exponent
    places = max(minor_units(currency), -min(int(exponent), 0))
    return _with_symbol(amount, grouped_fixed(abs(amount), places), currency)


def usd_price(value: Decimal) -> str:
    """A USD unit price with at least cents and every significant place: $0.10, $0.075, $4.00."""
    whole, _, places = plain(value).partition(".")
    return f"${whole}.{places.ljust(2, '0')}"


def percent(rate: Decimal | None, *, missing: str = DASH) -> str:
    """A ratio as a percentage to one place: 0.9876 -> 98.8 %."""
    return missing if rate is None else f"{grouped_fixed(rate * 100, 1)} %"


def usd_short(value: Decimal) -> str:
    """Dollars in a few characters, for a chart's axis: $1.2k, $3.4M, $0.12, $0.0004."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for limit, suffix in ((Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k")):
        if value >= limit:
            return f"{sign}${(value / limit).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}{suffix}"
    places = 2 if value >= 1 or value == 0 else 4
    return f"{sign}${value.quantize(Decimal(1).scaleb(-visible_places(value, places)), rounding=ROUND_HALF_UP)}"
