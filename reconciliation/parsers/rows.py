"""The rows a provider file yields, the sources it may come from and the token-type parts of a cost line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

OPENAI_COSTS = "openai-costs"
OPENAI_USAGE = "openai-usage"
ANTHROPIC_COSTS = "anthropic-costs"
REQUESTS = "requests"
SOURCES = (OPENAI_COSTS, OPENAI_USAGE, ANTHROPIC_COSTS, REQUESTS)
BUCKET_SOURCES = (OPENAI_COSTS, OPENAI_USAGE, ANTHROPIC_COSTS)
# the catalog's `provider` of the models each export covers (a gateway log covers every provider)
SOURCE_PROVIDER = {OPENAI_COSTS: "openai", OPENAI_USAGE: "openai", ANTHROPIC_COSTS: "anthropic"}

# token-type parts of a cost line, as the providers write them -> ours
INPUT, CACHED_INPUT, OUTPUT, CACHE_WRITE = "input", "cached_input", "output", "cache_write"
CACHE_WRITE_1H = "cache_write_1h"  # the catalog's dimensions (docs/pricing-dimensions.md) these parts are priced at
OPENAI_PARTS = {"input": INPUT, "output": OUTPUT, "cached input": CACHED_INPUT, "cached_input": CACHED_INPUT}
ANTHROPIC_PARTS = {
    "uncached_input_tokens": INPUT,
    "output_tokens": OUTPUT,
    "cache_read_input_tokens": CACHED_INPUT,
    "cache_creation.ephemeral_5m_input_tokens": CACHE_WRITE,
    "cache_creation.ephemeral_1h_input_tokens": CACHE_WRITE_1H,
    "cache_creation_input_tokens": CACHE_WRITE,
}

HEAD_BYTES = 64 * 1024
MAX_AMOUNT = Decimal(10) ** 12  # USD on one row; beyond this a value is a misread, not a bill
MAX_COUNT = 10**15
MAX_REQUEST_ID = 128
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
ONE_DAY = timedelta(days=1)


class UnreadableFile(Exception):
    """The file cannot be read at all: empty, not a CSV or JSON page, or a header no source has."""


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One aggregate line of a provider export. `amount_usd` is None in a usage export (token counts only)."""

    line: int
    start: datetime
    end: datetime
    model: str  # as the provider wrote it; "" for a line that is a day total
    part: str  # input, cached_input, output, cache_write, other:<text>, or "" for the whole line
    project: str  # provider project (OpenAI) or workspace (Anthropic); "" when none
    amount_usd: Decimal | None
    currency: str
    input_tokens: int | None = None  # input including cached, as OpenAI counts it
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    line: int
    request_id: str
    occurred_at: datetime
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class EmptyBucket:
    line: int
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


ParsedRow = BucketRow | RequestRow | EmptyBucket | RowError


@dataclass
class ProviderFile:
    source: str
    file_format: str  # csv or json
    columns: tuple[str, ...]
    rows: Iterator[ParsedRow]


class BinaryReadable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class RowProblem(Exception):
    """Why one record cannot be read; becomes a RowError with the record's line number."""
