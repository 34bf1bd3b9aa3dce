"""Reading one usage event as a client sent it: pure checks, each refusal with a code and a message.

Every field of an event is declared once in `EVENT_FIELDS`, with its type and the limits of the column it is
stored in (a text's length, an integer column's range, a decimal's places), so nothing that passes these checks is
refused by the database. Adding a field is one declaration there (and passing its value on where it is used).
Text anywhere in an event (fields, feature keys, metadata keys and values, nested) must be storable: a NUL
character or a lone surrogate is refused here, never sent to the database. No check makes a query.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.dateparse import parse_datetime

from pricing.dimensions import SERVICE_TIERS
from pricing.rating import FeatureUse, UsageLine
from usage.event_dimensions import SERVICE_TIER_NAMES

MAX_COUNT = 10**10  # no single provider call has more tokens or images than this
INT32_MAX = 2**31 - 1  # models.IntegerField
INT64_MAX = 2**63 - 1  # models.BigIntegerField
PRECISE_PLACES = 12  # PreciseDecimalField: 28 digits, 12 of them after the point
MAX_FEATURES = 50
MAX_FEATURE_QUANTITY = Decimal(1_000_000)
FEATURE_KEY_LENGTH = 100  # pricing.Feature.feature_key
TIME_TEXT_LENGTH = 64
ECHO_LENGTH = 60  # how much of a refused value a message quotes

# what PostgreSQL cannot store in text or jsonb, and UTF-8 cannot encode: NUL and lone surrogates
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class EventRefused(Exception):
    """The event cannot be recorded as sent; `code` says why for the client and the dead-letter table."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def storable_text(value: str) -> str:
    """The text with each character PostgreSQL or UTF-8 refuses (NUL, a lone surrogate) replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", value)


def storable_json(value: Any) -> Any:
    """A copy of a JSON value whose every string and key is storable text (see storable_text)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def _echo(value: Any) -> str:
    """A refused value as a message quotes it: repr escapes NUL and surrogates, and long values are cut."""
    text = repr(value)
    return text if len(text) <= ECHO_LENGTH else f"{text[:ECHO_LENGTH]}... ({len(text)} characters)"


def _check_text(value: str, name: str) -> None:
    found = _UNSTORABLE.search(value)
    if found is not None:
        what = "a NUL character (\\u0000)" if found.group() == "\x00" else f"a lone surrogate ({found.group()!r})"
        raise EventRefused("invalid_text", f"{name} contains {what}, which cannot be stored; send printable text")


def _check_json_text(value: Any, name: str) -> None:
    """Every key and string in a JSON value is storable; iterative, so deep nesting cannot exhaust the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _check_text(item, name)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _check_text(str(key), f"{name} key")
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


# -- the field kinds (Text, Choice, Count, DecimalNumber, Time, JsonObject, Features) -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Limits that come from settings, passed to every field's read."""

    metadata_max_bytes: int


class FieldSpec(Protocol):
    """A field of an event: its name, and how to read and check it (raising EventRefused)."""

    @property
    def name(self) -> str: ...

    def read(self, raw: dict[str, Any], limits: Limits) -> Any: ...


@dataclass(frozen=True)
class Text:
    """Text stored in a column of `max_length` characters."""

    name: str
    max_length: int
    required: bool = False
    printable: bool = False  # no control characters at all (ids)

    def read(self, raw: dict[str, Any], limits: Limits) -> str:
        value = raw.get(self.name)
        if value is None or value == "":
            if self.required:
                raise EventRefused("invalid_event", f"{self.name} is required: 1 to {self.max_length} characters")
            return ""
        if not isinstance(value, str):
            raise EventRefused("invalid_event", f"{self.name} must be text, got {_echo(value)}")
        if not value.isascii() or "\x00" in value:
            _check_text(value, self.name)
        if len(value) > self.max_length:
            raise EventRefused(
                "invalid_event", f"{self.name} must be at most {self.max_length} characters, got {len(value)}"
            )
        if self.printable and not value.isprintable():
            raise EventRefused("invalid_event", f"{self.name} must be printable characters only, got {_echo(value)}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a few known words (e.g. a service tier), stored as text; absent means `default`."""

    name: str
    choices: tuple[str, ...]
    default: str
    aliases: Mapping[str, str] = field(default_factory=dict)  # other names a provider uses for a choice

    def read(self, raw: dict[str, Any], limits: Limits) -> str:
        value = raw.get(self.name)
        if value is None or value == "":
            return self.default
        if isinstance(value, str) and value in self.aliases:
            return self.aliases[value]
        if not isinstance(value, str) or value not in self.choices:
            raise EventRefused(
                "invalid_event", f"{self.name} must be one of {', '.join(self.choices)}, got {_echo(value)}"
            )
        return value


@dataclass(frozen=True)
class Count:
    """A whole number >= 0 stored in an integer column whose largest value is `column_max`."""

    name: str
    column_max: int
    required: bool = False
    max_value: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_value", min(MAX_COUNT, self.column_max))

    def read(self, raw: dict[str, Any], limits: Limits) -> int:
        value = raw.get(self.name)
        if value is None:
            if self.required:
                raise EventRefused("invalid_event", f"{self.name} is required: a whole number >= 0")
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventRefused("invalid_event", f"{self.name} must be a whole number >= 0, got {_echo(value)}")
        if not 0 <= value <= self.max_value:
            raise EventRefused(
                "out_of_range", f"{self.name} must be between 0 and {self.max_value}, got {_echo(value)}"
            )
        return value


def _places(value: Decimal) -> int:
    """Decimal places that are not trailing zeros, read from the digits (no arithmetic, so no rounding)."""
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0")) if any(digits) else len(digits)
    return max(0, -(exponent + trailing))


def decimal_of(value: Any, name: str, *, places: int = PRECISE_PLACES) -> Decimal:
    """A decimal from a JSON number (parsed as Decimal) or a string; never from a float or a boolean."""
    if isinstance(value, bool | float) or not isinstance(value, int | str | Decimal):
        raise EventRefused("invalid_event", f"{name} must be a decimal number or a string of one, got {_echo(value)}")
    if isinstance(value, str) and len(value) > 40:
        raise EventRefused("invalid_event", f"{name} must be a decimal number of at most 40 characters")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise EventRefused("invalid_event", f"{name} must be a decimal number, got {_echo(value)}") from None
    if not result.is_finite():
        raise EventRefused("invalid_event", f"{name} must be finite, got {_echo(value)}")
    if _places(result) > places:
        raise EventRefused("out_of_range", f"{name} has more than {places} decimal places, got {_echo(value)}")
    return result


@dataclass(frozen=True)
class DecimalNumber:
    """A decimal in [minimum, maximum] with at most PRECISE_PLACES places, as a JSON number or a string."""

    name: str
    minimum: Decimal
    maximum: Decimal
    default: Decimal

    def read(self, raw: dict[str, Any], limits: Limits) -> Decimal:
        value = raw.get(self.name)
        if value is None:
            return self.default
        result = decimal_of(value, self.name)
        if not self.minimum <= result <= self.maximum:
            raise EventRefused(
                "out_of_range", f"{self.name} must be between {self.minimum} and {self.maximum}, got {_echo(value)}"
            )
        return result


@dataclass(frozen=True)
class Time:
    """An ISO 8601 time with a zone (Z or +hh:mm); absent means "when it was received" (None here)."""

    name: str

    def read(self, raw: dict[str, Any], limits: Limits) -> datetime | None:
        value = raw.get(self.name)
        if value is None:
            return None
        hint = "an ISO 8601 time with a zone, e.g. 2026-11-21T10:00:00Z"
        if not isinstance(value, str) or len(value) > TIME_TEXT_LENGTH:
            raise EventRefused("invalid_event", f"{self.name} must be {hint}, got {_echo(value)}")
        _check_text(value, self.name)
        try:
            parsed = parse_datetime(value)
            # a zone that moves the time past year 1 or 9999 cannot become UTC
            result = parsed.astimezone(UTC) if parsed is not None and parsed.tzinfo is not None else None
        except (ValueError, OverflowError):
            raise EventRefused(
                "invalid_event", f"{self.name} is not a real time ({_echo(value)}): check the date, hour and zone"
            ) from None
        if parsed is None:
            raise EventRefused("invalid_event", f"{self.name} must be {hint}, got {_echo(value)}")
        if result is None:
            raise EventRefused(
                "invalid_event", f"{self.name} has no zone ({_echo(value)}): add Z for UTC or an offset like +02:00"
            )
        return result


# json.dumps(value, cls=DjangoJSONEncoder) without making an encoder per call (the encoder keeps no state)
_json_text = DjangoJSONEncoder().encode


@dataclass(frozen=True)
class JsonObject:
    """A JSON object of at most USAGE_METADATA_MAX_BYTES (`Limits.metadata_max_bytes`) whose text is all storable."""

    name: str

    def read(self, raw: dict[str, Any], limits: Limits) -> dict[str, Any]:
        max_bytes = limits.metadata_max_bytes
        value = raw.get(self.name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise EventRefused("invalid_event", f"{self.name} must be an object")
        try:
            text = _json_text(value)  # ASCII: NUL is \u0000, any non-ASCII \uXXXX
        except (TypeError, ValueError, RecursionError):
            raise EventRefused("invalid_event", f"{self.name} must be plain JSON") from None
        if len(text) > max_bytes:
            raise EventRefused("invalid_event", f"{self.name} must be at most {max_bytes} bytes, got {len(text)}")
        if "\\u0000" in text or "\\ud" in text:  # a NUL or a surrogate may be inside: look properly
            _check_json_text(value, self.name)
        return value


@dataclass(frozen=True)
class Features:
    """A list of distinct feature keys, or of {"key", "quantity"?, "cepo"?} objects; a key listed twice is refused
    (its multiplier would compound); a feature used more than once says so with its quantity."""

    name: str

    def read(self, raw: dict[str, Any], limits: Limits) -> tuple[FeatureUse, ...]:
        value = raw.get(self.name)
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > MAX_FEATURES:
            raise EventRefused(
                "invalid_event",
                f"{self.name} must be a list of keys or {{key, quantity}} objects (at most {MAX_FEATURES})",
            )
        uses: dict[str, FeatureUse] = {}
        for item in value:
            use = self.use_of(item)
            if use.key in uses:
                raise EventRefused(
                    "duplicate_feature",
                    f"{self.name}: {_echo(use.key)} is listed more than once; list each feature once "
                    '(with {"key", "quantity"} for a feature used several times)',
                )
            uses[use.key] = use
        return tuple(uses.values())

    def use_of(self, item: Any) -> FeatureUse:
        """One item of the list: a key, or {key, quantity?, cepo?}."""
        if isinstance(item, dict):
            unknown = set(item) - {"key", "quantity", "cepo"}
            if unknown:
                raise EventRefused(
                    "invalid_event",
                    f"{self.name}: an item has only key, quantity and cepo, got {_echo(sorted(unknown))}",
                )
            key = item.get("key")
        else:
            key = item
        if not isinstance(key, str) or not key:
            raise EventRefused("invalid_event", f"{self.name}: cannot read {_echo(item)} as a feature key")
        _check_text(key, f"{self.name} key")
        if len(key) > FEATURE_KEY_LENGTH:
            raise EventRefused("invalid_event", f"{self.name}: a key has at most {FEATURE_KEY_LENGTH} characters")
        if not isinstance(item, dict):
            return FeatureUse(key=key)
        quantity = decimal_of(item.get("quantity", 1), f"{self.name}[{key}].quantity")
        if not 0 <= quantity <= MAX_FEATURE_QUANTITY:
            raise EventRefused(
                "out_of_range", f"{self.name}[{key}].quantity must be between 0 and {MAX_FEATURE_QUANTITY}"
            )
        cepo = item.get("cepo", False)
        if not isinstance(cepo, bool):
            raise EventRefused("invalid_event", f"{self.name}[{key}].cepo must be true or false")
        return FeatureUse(key=key, quantity=quantity, cepo=cepo)


# -- the event -------------------------------------------------------------------------------------------------

EVENT_FEATURES = Features("features")

# Each field of an event, its kind and its column's limits (usage.models.UsageEvent; tests/usage/test_event_input
# checks the two agree). Order is the order problems are reported in.
EVENT_FIELDS: tuple[FieldSpec, ...] = (
    Text("request_id", 128, required=True, printable=True),
    Text("model", 200, required=True),
    Count("input_tokens", INT64_MAX, required=True),
    Count("output_tokens", INT64_MAX, required=True),
    Count("cached_input_tokens", INT64_MAX),
    Count("reasoning_tokens", INT64_MAX),
    Count("images", INT32_MAX),
    DecimalNumber("multiplier", minimum=Decimal(1), maximum=Decimal(1000), default=Decimal(1)),
    Text("operation_type", 100),
    Text("user", 200),
    Text("conversation_id", 200),
    Time("occurred_at"),
    JsonObject("metadata"),
    EVENT_FEATURES,
    # the price dimensions (docs/pricing-dimensions.md)
    Count("cache_write_input_tokens", INT64_MAX),
    Count("cache_write_1h_input_tokens", INT64_MAX),
    Count("image_input_tokens", INT64_MAX),
    Count("image_output_tokens", INT64_MAX),
    Count("audio_input_tokens", INT64_MAX),
    Count("audio_output_tokens", INT64_MAX),
    Count("characters", INT64_MAX),
    Count("requests", INT64_MAX),
    DecimalNumber("seconds", minimum=Decimal(0), maximum=Decimal(10**7), default=Decimal(0)),
    Text("image_size", 20),
    Text("image_quality", 20),
    Choice("service_tier", tuple(SERVICE_TIERS), default="default", aliases=SERVICE_TIER_NAMES),
    Text("provider_request_id", 200, printable=True),
)

_READ = object()


def _absent_value(spec: FieldSpec) -> Any:
    """What `spec` reads from an event without the field, when that is an immutable value the same for every
    event (so it may be shared); else _READ: a required field, or one read as a new object each time."""
    try:
        value = spec.read({}, Limits(metadata_max_bytes=0))
    except EventRefused:
        return _READ
    return value if type(value) in (str, int, Decimal, tuple, type(None)) else _READ


# (name, spec, absent value) of each field: a field the event does not name is not read, its absent value is
# taken (most events name a handful of the fields); problems keep EVENT_FIELDS' order, an absent field has none
_FIELD_READS = tuple((spec.name, spec, _absent_value(spec)) for spec in EVENT_FIELDS)

# parts that together cannot exceed their whole: ((part, ...), whole)
SUBSETS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("cached_input_tokens", "cache_write_input_tokens", "cache_write_1h_input_tokens", "image_input_tokens",
         "audio_input_tokens"),
        "input_tokens",
    ),
    (("reasoning_tokens", "image_output_tokens", "audio_output_tokens"), "output_tokens"),
)  # fmt: skip
DIMENSIONS = ("cache_write_input_tokens", "cache_write_1h_input_tokens", "image_input_tokens", "image_output_tokens",
              "audio_input_tokens", "audio_output_tokens", "characters", "requests", "seconds", "image_size",
              "image_quality", "service_tier")  # fmt: skip

# the UsageLine fields an event may leave out: each field's absent value is the line's default (a test says so)
_LINE_OPTIONAL = ("cached_input_tokens", "reasoning_tokens", "images", "features", "multiplier", *DIMENSIONS)


@dataclass(frozen=True)
class ParsedEvent:
    request_id: str
    line: UsageLine
    operation_type: str
    user: str
    conversation_id: str
    metadata: dict[str, Any]
    features_raw: list[Any]
    values: dict[str, Any] = field(default_factory=dict)  # every declared field, read and checked
    provider_request_id: str = ""


@functools.lru_cache(maxsize=8)
def _limits(metadata_max_bytes: int) -> Limits:
    return Limits(metadata_max_bytes=metadata_max_bytes)


def request_id_of(raw: Any) -> str:
    """The request id of a raw event, for reporting and the dead-letter row, whatever else is wrong with it."""
    value = raw.get("request_id") if isinstance(raw, dict) else None
    return storable_text(value[:128]) if isinstance(value, str) else ""


def event_parse(
    raw: Any, *, received_at: datetime, late_window: timedelta, future_skew: timedelta, metadata_max_bytes: int
) -> ParsedEvent:
    """Check one event against EVENT_FIELDS and the rules between fields; raise EventRefused with the first
    problem found."""
    if not isinstance(raw, dict):
        raise EventRefused("invalid_event", "an event must be a JSON object")
    limits = _limits(metadata_max_bytes)
    values = {
        name: spec.read(raw, limits) if absent is _READ or name in raw else absent
        for name, spec, absent in _FIELD_READS
    }
    for parts, whole in SUBSETS:
        if sum(values[part] for part in parts) > values[whole]:
            raise EventRefused(
                "subset_exceeds_total",
                f"{', '.join(parts)} are parts of {whole}: together they cannot exceed it",
            )
    occurred_at = values["occurred_at"] or received_at
    if occurred_at < received_at - late_window:
        raise EventRefused("event_too_old", f"occurred_at is older than the {late_window.days}-day late-event window")
    if occurred_at > received_at + future_skew:
        raise EventRefused("event_in_future", "occurred_at is in the future")
    return ParsedEvent(
        request_id=values["request_id"],
        line=UsageLine(
            model=values["model"],
            occurred_at=occurred_at,
            input_tokens=values["input_tokens"],
            output_tokens=values["output_tokens"],
            # a field the event leaves out is the line's default, which is its absent value (_LINE_OPTIONAL)
            **{name: values[name] for name in _LINE_OPTIONAL if name in raw},
        ),
        operation_type=values["operation_type"],
        user=values["user"],
        conversation_id=values["conversation_id"],
        metadata=values["metadata"],
        features_raw=list(raw.get("features") or []),
        values=values,
        provider_request_id=values["provider_request_id"],
    )
