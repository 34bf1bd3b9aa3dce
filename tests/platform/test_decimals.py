"""The API's one decimal convention (CONTRACT.md): plain notation, no trailing zeros, no exponent."""

from decimal import Decimal

import pytest

from core.decimals import DecimalStringField, decimal_string


@pytest.mark.parametrize(
    ("stored", "answered"),
    [
        ("50000.000000000000", "50000"),
        ("0.150000000000", "0.15"),
        ("-1.50", "-1.5"),
        ("0E-12", "0"),
        ("-0", "0"),
        ("5E+4", "50000"),
        ("1E-12", "0.000000000001"),
        ("123456789012345.123456789012", "123456789012345.123456789012"),
    ],
)
def test_a_decimal_is_written_plain_without_trailing_zeros(stored: str, answered: str) -> None:
    assert decimal_string(Decimal(stored)) == answered


def test_the_serializer_field_rounds_to_its_column_then_drops_the_zeros() -> None:
    field = DecimalStringField(max_digits=28, decimal_places=2)
    assert field.to_representation(Decimal("9995.655")) == "9995.66"
    assert field.to_representation(Decimal("9995.600000")) == "9995.6"
