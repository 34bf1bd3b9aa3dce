from typing import Any

from django.db import models


class PreciseDecimalField(models.DecimalField):
    """A precise money or rate amount: 28 digits with 12 decimal places, the one stored precision (DESIGN.md)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 28)
        kwargs.setdefault("decimal_places", 12)
        super().__init__(*args, **kwargs)
