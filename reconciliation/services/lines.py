"""Writing a run's lines in chunks as they are made, counting and totalling them on the way.

On PostgreSQL a chunk goes in with COPY (a million lines in seconds); elsewhere with bulk_create. Amounts are kept
unrounded in the totals and rounded once, to the stored precision, on each line.
"""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal

from django.db import connection

from pricing.money import precise
from reconciliation.models import ReconciliationLine, ReconciliationRun

ZERO = Decimal(0)
CHUNK = 5000
Status = ReconciliationLine.Status


@dataclass(slots=True)
class LineDraft:
    status: str
    key: str
    line_number: int | None = None
    day: date | None = None
    model_name: str = ""
    model_id: str = ""
    project: str = ""
    request_id: str = ""
    usage_event_id: int | None = None
    calculated_usd: Decimal = ZERO
    actual_usd: Decimal | None = None
    difference_usd: Decimal | None = None
    currency: str = "USD"
    events: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    provider_input_tokens: int | None = None
    provider_cached_input_tokens: int | None = None
    provider_output_tokens: int | None = None
    reason_code: str = ""
    reason: str = ""
    implied_input_per_million: Decimal | None = None
    implied_cached_input_per_million: Decimal | None = None
    implied_output_per_million: Decimal | None = None


DRAFT_FIELDS = tuple(f.name for f in fields(LineDraft))
_draft_values = operator.attrgetter(*DRAFT_FIELDS)
MONEY_FIELDS = frozenset(
    {"calculated_usd", "actual_usd", "difference_usd", "implied_input_per_million",
     "implied_cached_input_per_million", "implied_output_per_million"}
)  # fmt: skip
TEXT_LIMITS = {"key": 300, "model_name": 300, "model_id": 200, "project": 300, "request_id": 128, "currency": 10}


TEXT_POSITIONS = tuple((DRAFT_FIELDS.index(name), limit) for name, limit in TEXT_LIMITS.items())
KEY, MODEL_NAME, PROJECT = (DRAFT_FIELDS.index(name) for name in ("key", "model_name", "project"))


def _fit(draft: LineDraft, *, round_money: bool) -> tuple[object, ...]:
    """The draft's values in column order, texts cut to their column. PostgreSQL rounds numerics to the column's
    scale itself, half away from zero as precise() does; elsewhere they are rounded here."""
    values = _draft_values(draft)
    # key, model name and project are the texts that come from the file unbounded; the others are bounded upstream
    if not round_money and len(values[KEY]) <= 128 and len(values[MODEL_NAME]) <= 200 and len(values[PROJECT]) <= 200:
        return values
    fitted = list(values)
    for at, limit in TEXT_POSITIONS:
        if len(fitted[at]) > limit:
            fitted[at] = fitted[at][: limit - 1] + "…"
    if round_money:
        for at, name in enumerate(DRAFT_FIELDS):
            if name in MONEY_FIELDS and fitted[at] is not None:
                fitted[at] = precise(fitted[at])
    return tuple(fitted)


class LineWriter:
    """Collects a run's lines and writes them every CHUNK lines (unless held); `flush()` writes the rest."""

    def __init__(self, run: ReconciliationRun) -> None:
        self.run = run
        self.counts: Counter[str] = Counter()
        self.total_calculated = ZERO
        self.total_actual = ZERO
        self.held = False  # while the connection is busy (a pipeline), lines wait for an explicit flush
        self._buffer: list[tuple[object, ...]] = []
        self._copy = connection.vendor == "postgresql"

    def add(self, draft: LineDraft, *, weight: int = 1) -> None:
        """One line; `weight` is how many rows or requests it stands for (a roll-up of matched requests)."""
        self.counts[draft.status] += weight
        if draft.status != Status.ERROR:
            self.total_calculated += draft.calculated_usd
        if draft.actual_usd is not None and draft.currency == "USD":
            self.total_actual += draft.actual_usd
        self._buffer.append(_fit(draft, round_money=not self._copy))
        if len(self._buffer) >= CHUNK and not self.held:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        if self._copy:
            self._write_copy(self._buffer)
        else:
            ReconciliationLine.objects.bulk_create(
                [ReconciliationLine(run=self.run, **dict(zip(DRAFT_FIELDS, row, strict=True))) for row in self._buffer],
                batch_size=500,
            )
        self._buffer = []

    def _write_copy(self, rows: list[tuple[object, ...]]) -> None:
        meta = ReconciliationLine._meta
        column_of = {f.name: str(f.column) for f in meta.concrete_fields}
        quote = connection.ops.quote_name
        columns = [quote(column_of["run"]), *(quote(column_of[name]) for name in DRAFT_FIELDS)]
        statement = f"COPY {quote(meta.db_table)} ({', '.join(columns)}) FROM STDIN"
        run_id = self.run.pk
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row((run_id, *row))
