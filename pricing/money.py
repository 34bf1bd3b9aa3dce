"""Money: a Decimal amount with its currency. Floats are refused; rounding happens at named points only."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CREDITS = "CREDITS"
USD = "USD"

# ISO 4217 minor units of the currencies TokenLedger displays or bills in; CREDITS are whole credits on display.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "ZAR": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "INR": 2,
    "BRL": 2,
    "MXN": 2,
    "NGN": 2,
    "KES": 2,
    "SGD": 2,
    "HKD": 2,
    "CNY": 2,
    "JPY": 0,
    "KRW": 0,
    CREDITS: 0,
}
CURRENCIES = tuple(sorted(MINOR_UNITS))

# Precise amounts are stored with 12 decimal places (DecimalField(max_digits=28, decimal_places=12)).
PRECISE = Decimal("0.000000000001")


class MoneyError(ValueError):
    pass


def to_decimal(value: object) -> Decimal:
    """A Decimal from a Decimal, int or numeric string; a float (or bool) is an error, never silently converted."""
    if isinstance(value, bool | float):
        raise MoneyError(f"money must not be a float: {value!r}; pass a Decimal or a string")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise MoneyError(f"not a number: {value!r}") from None
    else:
        raise MoneyError(f"cannot use {type(value).__name__} as money")
    if not result.is_finite():
        raise MoneyError(f"money must be finite: {value!r}")
    return result


def precise(amount: Decimal) -> Decimal:
    """The stored precision: 12 decimal places, half up. The only rounding applied to rated amounts."""
    return amount.quantize(PRECISE, rounding=ROUND_HALF_UP)


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount))
        minor_units(self.currency)

    @classmethod
    def zero(cls, currency: str = USD) -> Money:
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise MoneyError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * to_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def convert(self, *, to: str, rate: Decimal) -> Money:
        """This amount in another currency at `rate` (units of `to` per unit of this currency)."""
        return Money(self.amount * to_decimal(rate), to)

    def rounded(self) -> Money:
        """Rounded to the currency's minor unit, half up: for display and billing totals only."""
        exponent = Decimal(1).scaleb(-minor_units(self.currency))
        return Money(self.amount.quantize(exponent, rounding=ROUND_HALF_UP), self.currency)

    def to_minor_units(self) -> int:
        """Integer minor units (cents) at the Stripe and invoice boundary: rounded once, half up."""
        return int(self.rounded().amount.scaleb(minor_units(self.currency)))

    @classmethod
    def from_minor_units(cls, value: int, currency: str) -> Money:
        if not isinstance(value, int) or isinstance(value, bool):
            raise MoneyError(f"minor units must be an integer: {value!r}")
        return cls(Decimal(value).scaleb(-minor_units(currency)), currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
