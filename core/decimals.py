"""The API's one way to write a decimal (CONTRACT.md): a string in plain notation without trailing zeros.

"50000", "0.15", "-1.5", never "50000.000000000000" or "5E+4". Every money and rate field of every endpoint answers
through `decimal_string` (serializers use `DecimalStringField`), whatever places its column keeps.
"""

from decimal import Decimal
from typing import Any

from rest_framework import serializers


def decimal_string(value: Decimal) -> str:
    """`value` in plain notation with no trailing zeros and no exponent; zero is "0" (never "-0" or "0E-12")."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


class DecimalStringField(serializers.DecimalField):
    """A DecimalField that reads as DRF's does (max_digits, decimal_places, bounds) and answers `decimal_string`."""

    def to_representation(self, value: Any) -> str:
        quantized = super().to_representation(value)  # rounds to the column's places, as before
        return decimal_string(Decimal(quantized))
