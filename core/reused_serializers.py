"""Serializers built once per thread: a request read, or an answer written, without building their fields each time.

DRF builds a serializer's fields anew for each instance (a deep copy of every declared field), which on the gate's
endpoints costs more than the checks themselves. Both classes here keep one serializer per thread:

- `InputReader(SerializerClass).read(data)` runs its `run_validation`, which is what `is_valid` runs: every field's
  checks, the `validate_<field>` methods, then `validate`. A refused body is checked once more by a new serializer's
  `is_valid(raise_exception=True)`, so the error answered is exactly the serializer's own.
- `OutputWriter(SerializerClass).write(value)` runs its `to_representation`, which is what `.data` runs.

The OpenAPI schema still comes from the serializer classes.
"""

from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

from rest_framework import serializers

S = TypeVar("S", bound=serializers.Serializer)


class _Reused(Generic[S]):
    def __init__(self, serializer_class: type[S]) -> None:
        self.serializer_class = serializer_class
        self._local = threading.local()

    def _serializer(self) -> S:
        serializer: S | None = getattr(self._local, "serializer", None)
        if serializer is None:
            serializer = self._local.serializer = self.serializer_class()
        return serializer


class InputReader(_Reused[S]):
    def read(self, data: Any) -> dict[str, Any]:
        """The validated values, or the serializer's ValidationError (HTTP 400 with its field messages)."""
        try:
            values: dict[str, Any] = self._serializer().run_validation(data)
        except serializers.ValidationError:
            refused = self.serializer_class(data=data)
            refused.is_valid(raise_exception=True)
            raise  # not reached: the same checks refuse the same body
        return values


class OutputWriter(_Reused[S]):
    def write(self, value: Any) -> dict[str, Any]:
        """The answer as `SerializerClass(value).data` writes it."""
        answer: dict[str, Any] = self._serializer().to_representation(value)
        return answer
