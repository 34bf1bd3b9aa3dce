"""What every usage endpoint shares: reading the body, and writing amounts and times as the API does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import serializers
from rest_framework.request import Request

from core.api_errors import PayloadTooLarge
from core.decimals import DecimalStringField, decimal_string
from pricing.money import PRECISE


def money_field(**options: Any) -> serializers.DecimalField:
    """A precise amount as a decimal string (28 digits, 12 places)."""
    return serializers.DecimalField(max_digits=28, decimal_places=12, **options)


def amount_field(**options: Any) -> DecimalStringField:
    """A precise amount (28 digits, 12 places) answered as the API's decimal string, without trailing zeros."""
    return DecimalStringField(max_digits=28, decimal_places=12, **options)


def request_body(request: Request) -> Any:
    try:
        return request.data
    except RequestDataTooBig:
        raise PayloadTooLarge(f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.") from None


def amount_out(value: Decimal | None) -> str | None:
    """An amount as the API's decimal string (core.decimals), rounded to the 12 places the columns keep."""
    return None if value is None else decimal_string(value.quantize(PRECISE))


def time_out(value: datetime) -> str:
    """A time as DRF's DateTimeField writes it: ISO 8601 in UTC, with Z."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
