"""How the reconciliation console shows amounts and rates, and keeps a CSV cell from running as a formula."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def usd_display(value: Decimal | None, places: str = "0.0001") -> str:
    if value is None:
        return "-"
    rounded = value.quantize(Decimal(places), rounding=ROUND_HALF_UP)
    return f"-${abs(rounded):,}" if rounded < 0 else f"${rounded:,}"


def rate_display(rate: Decimal | None) -> str:
    return "-" if rate is None else f"{(rate * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} %"


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    text = str(value)
    # a cell a spreadsheet would run as a formula is kept as text
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _numeric(text) else text


def _numeric(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True
