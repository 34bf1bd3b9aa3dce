"""JSON with numbers as Decimal: a fractional JSON number never becomes a float on its way to money."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class DecimalJSONParser(JSONParser):
    """JSON whose numbers with a fraction or an exponent become Decimal, so an amount never passes through a float.

    NaN and Infinity are refused; anything unreadable is a 400 (ParseError), never a 500. The API's default parser
    (settings.REST_FRAMEWORK) and the views that name their parsers use this one.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(stream.read().decode(encoding), parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, LookupError, RecursionError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None
