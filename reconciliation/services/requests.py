"""Matching a gateway's per-request log against our usage events by request id, and recording the actual cost.

The file streams by in chunks of CHUNK rows. For each chunk one query fetches the events with those request ids
whose time is within the chunk's time span (plus a slack): the (occurred_at, model_id) index keeps that a range
scan. Ids not found there are looked up again without the time bound, many chunks at once.

Each matched event gets the gateway's cost as its `actual_cost_usd`, its status and `reconciled_at`, only where
something changed, so running the same file again changes nothing. On PostgreSQL a chunk's event updates are sent
in pipeline mode and applied by the server while the next chunk is matched and read.

Lines: every request that is not matched (a discrepancy, not found, a row that cannot be read) is a line of its
own; matched requests are rolled up per UTC day x model into one `matched` line each (the line's `events` says how
many; the run's `matched` count is of requests), since each matched event already carries its actual cost and
status. The ids of the events the rows matched go to a temporary table, so the events in the file's time span that
no row named (`not_in_export`, one line each) are found by one anti-join, whatever the file's size.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from pricing.catalog import CatalogSnapshot, ModelPriceVersion
from pricing.errors import NoPriceInForce, UnknownModel
from pricing.money import precise
from reconciliation.conf import Tolerance
from reconciliation.matching import Comparison, Tokens, compare
from reconciliation.models import ReconciliationLine, ReconciliationRun
from reconciliation.parsers import ParsedRow, ProviderFile, RequestRow, RowError
from reconciliation.services.buckets import Coverage
from reconciliation.services.lines import LineDraft, LineWriter
from usage.models import UsageEvent

Status = ReconciliationLine.Status
Reason = ReconciliationLine.Reason
CHUNK = 5000
FALLBACK_CHUNK = 20_000
ZERO = Decimal(0)
EVENT_FIELDS = (
    "id", "request_id", "account_id", "model_id", "occurred_at", "input_tokens", "cached_input_tokens",
    "output_tokens", "cost_usd", "actual_cost_usd", "reconciliation_status",
)  # fmt: skip
ID_TABLE = "reconciliation_matched_event"


class _Event(NamedTuple):  # a tuple: a million are made per million rows
    id: int
    request_id: str
    account_id: int
    model_id: str
    occurred_at: datetime  # UTC; naive when read by the PostgreSQL fast path
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    actual_cost_usd: Decimal | None
    reconciliation_status: str

    @property
    def tokens(self) -> Tokens:
        return Tokens(self.input_tokens, self.cached_input_tokens, self.output_tokens, 1)


@dataclass
class _Rollup:
    """The matched requests of one UTC day x model."""

    first_line: int
    model_name: str
    count: int = 0
    calculated: Decimal = ZERO
    actual: Decimal = ZERO
    tokens: list[int] = field(default_factory=lambda: [0] * 6)  # ours in, cached, out; theirs in, cached, out


@dataclass
class RequestOutcome:
    coverage: Coverage
    events_updated: int = 0


def _event_rows(request_ids: list[str], low: datetime | None, high: datetime | None) -> Any:
    if connection.vendor != "postgresql":
        events = UsageEvent.objects.filter(request_id__in=request_ids)
        if low is not None and high is not None:
            events = events.filter(occurred_at__gte=low, occurred_at__lte=high)
        return events.order_by().values_list(*EVENT_FIELDS)
    # one array literal instead of thousands of placeholders, and rows as the driver reads them
    meta = UsageEvent._meta
    column_of = {f.attname: str(f.column) for f in meta.concrete_fields}
    quote = connection.ops.quote_name
    # occurred_at as UTC wall time: the driver's own loader reads it far faster than the time-zone-aware one
    columns = [
        f"{quote(column_of[name])} AT TIME ZONE 'UTC'" if name == "occurred_at" else quote(column_of[name])
        for name in EVENT_FIELDS
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(meta.db_table)} "  # noqa: S608 - names from the model, values bound
        f"WHERE {quote(column_of['request_id'])} = ANY(%s)"
    )
    params: list[Any] = [request_ids]
    if low is not None and high is not None:
        sql += f" AND {quote(column_of['occurred_at'])} BETWEEN %s AND %s"
        params += [low, high]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class _MatchedIds:
    """The ids of the events this run's rows matched, in a temporary table (dropped at the end)."""

    def __init__(self) -> None:
        self.table = connection.ops.quote_name(ID_TABLE)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.table} (event_id bigint NOT NULL)")
        self.pending: list[int] = []

    def add(self, event_id: int) -> None:
        self.pending.append(event_id)

    def flush(self) -> None:
        ids, self.pending = self.pending, []
        if not ids:
            return
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.copy(f"COPY {self.table} (event_id) FROM STDIN") as copy:
                    copy.write("\n".join(map(str, ids)) + "\n")  # COPY's text format: one integer a line
            else:
                cursor.executemany(f"INSERT INTO {self.table} (event_id) VALUES (%s)", [(i,) for i in ids])  # noqa: S608 - a constant name

    def unmatched(self) -> RawSQL:
        """True for an event no row matched (an expression on the events table)."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {self.table}")  # so the planner hashes it instead of scanning it per event
        events = connection.ops.quote_name(UsageEvent._meta.db_table)
        return RawSQL(  # noqa: S611 - constant names, no values
            f"NOT EXISTS (SELECT 1 FROM {self.table} m WHERE m.event_id = {events}.id)",  # noqa: S608 - constant names
            [],
            output_field=BooleanField(),
        )

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")


class _SeenEvents:
    """The events this run's rows have matched, one bit per event id in 8 KB blocks of 65,536 ids (a million
    matched events cost about 125 KB), so a request id repeated anywhere in the file is caught, not only within
    its chunk."""

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}

    def add(self, event_id: int) -> bool:
        """Mark the event; True when an earlier row had marked it already."""
        block = self.blocks.get(event_id >> 16)
        if block is None:
            block = self.blocks[event_id >> 16] = bytearray(8192)
        index, bit = (event_id & 0xFFFF) >> 3, 1 << (event_id & 7)
        if block[index] & bit:
            return True
        block[index] |= bit
        return False


class _Matcher:
    def __init__(
        self,
        *,
        snapshot: CatalogSnapshot,
        tolerance: Tolerance,
        writer: LineWriter,
        as_of: datetime,
        slack: timedelta,
    ) -> None:
        self.snapshot = snapshot
        self.tolerance = tolerance
        self.writer = writer
        self.as_of = as_of
        self.slack = slack
        self.coverage = Coverage()
        self.pending: list[RequestRow] = []
        self.updates: list[tuple[int, Decimal, str]] = []
        self.events_updated = 0
        self.rollups: dict[tuple[date, str], _Rollup] = {}
        self.matched_ids = _MatchedIds()
        self.seen = _SeenEvents()
        self._model_ids: dict[str, str | None] = {}
        self._pipelined = connection.vendor == "postgresql"

    # --- the file ---------------------------------------------------------------------------------------------------

    def read(self, provider_file: ProviderFile) -> None:
        rows = iter(provider_file.rows)
        chunk = self._take(rows)
        sent: list[tuple[int, Decimal, str]] = []
        while chunk:
            found = self._events_for(chunk)  # waits for the previous chunk's event updates, if still running
            with self._overlap():
                self._send_updates(sent)  # applied by the server while this chunk is matched and the next read
                for row, candidates in found:
                    self._resolve(row, candidates)
                chunk = self._take(rows)
            sent, self.updates = self.updates, []
            self.writer.flush()
            self.matched_ids.flush()
            if len(self.pending) >= FALLBACK_CHUNK:
                self._resolve_pending()
        self._send_updates(sent)
        self._resolve_pending()
        self._send_updates(self.updates)
        self.writer.flush()
        self.matched_ids.flush()

    def _take(self, rows: Iterator[ParsedRow]) -> list[RequestRow]:
        """The next CHUNK request rows; unreadable rows on the way become error lines."""
        chunk: list[RequestRow] = []
        for item in rows:
            self.coverage.rows += 1
            if isinstance(item, RequestRow):
                chunk.append(item)
                if len(chunk) >= CHUNK:
                    break
            elif isinstance(item, RowError):
                self._error(item.line, item.reason, Reason.UNREADABLE)
            else:  # a bucket row cannot come from a requests file; keep the count honest all the same
                self._error(getattr(item, "line", 0), "not a request row", Reason.UNREADABLE)
        return chunk

    @contextlib.contextmanager
    def _overlap(self) -> Iterator[None]:
        """On PostgreSQL, pipeline mode: statements sent in the block run while Python goes on; leaving the block
        waits for them. Lines are held meanwhile (COPY cannot run in a pipeline)."""
        if not self._pipelined:
            yield
            return
        connection.ensure_connection()
        self.writer.held = True
        try:
            with connection.connection.pipeline():
                yield
        finally:
            self.writer.held = False

    def _error(self, line: int, reason: str, code: str, request_id: str = "") -> None:
        self.writer.add(
            LineDraft(
                status=Status.ERROR,
                key=request_id or f"line {line}",
                line_number=line,
                request_id=request_id,
                reason_code=code,
                reason=reason,
            )
        )

    def _events_for(self, rows: list[RequestRow]) -> list[tuple[RequestRow, list[_Event]]]:
        """The chunk's rows with their candidate events; repeated ids are error lines, ids with no event in the
        chunk's time span wait for the lookup without it."""
        first_line: dict[str, int] = {}
        unique: list[RequestRow] = []
        low, high = min(row.occurred_at for row in rows), max(row.occurred_at for row in rows)
        self.coverage.extend(low, high)
        for row in rows:
            seen = first_line.get(row.request_id)
            if seen is not None:
                self._error(row.line, f"request id repeated (first on line {seen})", Reason.REPEATED, row.request_id)
                continue
            first_line[row.request_id] = row.line
            unique.append(row)
        found = self._events(list(first_line), low - self.slack, high + self.slack)
        matched = []
        for row in unique:
            candidates = found.get(row.request_id)
            if candidates:
                matched.append((row, candidates))
            else:
                self.pending.append(row)
        return matched

    def _resolve_pending(self) -> None:
        """The rows whose events were not in their chunk's time span: one query without the time bound."""
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        found = self._events(list({row.request_id for row in rows}), None, None)
        for row in rows:
            self._resolve(row, found.get(row.request_id, []))
        self.writer.flush()
        self.matched_ids.flush()

    @staticmethod
    def _events(request_ids: list[str], low: datetime | None, high: datetime | None) -> dict[str, list[_Event]]:
        """The events with these request ids (within [low, high] when given), by request id: one query."""
        found: dict[str, list[_Event]] = defaultdict(list)
        make = _Event._make
        for values in _event_rows(request_ids, low, high):
            event = make(values)
            found[event.request_id].append(event)
        return found

    # --- one row ----------------------------------------------------------------------------------------------------

    def _model_id(self, name: str) -> str | None:
        if name not in self._model_ids:
            try:
                self._model_ids[name] = self.snapshot.find_model(name).model_id
            except UnknownModel:
                self._model_ids[name] = None
        return self._model_ids[name]

    def _price(self, event: _Event) -> ModelPriceVersion | None:
        entry = self.snapshot.models.get(event.model_id)
        if entry is None:
            return None
        at = event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(tzinfo=UTC)
        try:
            return entry.price_at(at)
        except NoPriceInForce:
            return None

    def _resolve(self, row: RequestRow, candidates: list[_Event]) -> None:
        model_id = self._model_id(row.model)
        if len(candidates) > 1 and model_id is not None:
            candidates = [e for e in candidates if e.model_id == model_id] or candidates
        if len(candidates) == 1 and self.seen.add(candidates[0].id):
            # repeated further apart than a chunk: the first row's match stands, this one is not counted again
            self._error(row.line, "request id repeated (an earlier row matched its event)", Reason.REPEATED,
                        row.request_id)  # fmt: skip
            return
        if len(candidates) > 1:
            accounts = ", ".join(str(e.account_id) for e in candidates[:5])
            self._error(
                row.line,
                f"request id {row.request_id!r} is recorded for {len(candidates)} accounts ({accounts}): "
                "the file cannot say which",
                Reason.AMBIGUOUS,
                row.request_id,
            )
            return
        if candidates:
            event = candidates[0]
            if (
                row.currency == "USD"
                and model_id == event.model_id
                and row.input_tokens == event.input_tokens
                and row.cached_input_tokens == event.cached_input_tokens
                and row.output_tokens == event.output_tokens
                and self.tolerance.allows(difference=row.cost_usd - event.cost_usd, actual=row.cost_usd)
            ):  # the usual case
                self._matched(row, event)
                return
        draft = LineDraft(
            status=Status.NOT_FOUND,
            key=row.request_id,
            line_number=row.line,
            day=row.occurred_at.date(),
            model_name=row.model,
            model_id=model_id or "",
            request_id=row.request_id,
            actual_usd=row.cost_usd,
            difference_usd=row.cost_usd,
            currency=row.currency,
            provider_input_tokens=row.input_tokens,
            provider_cached_input_tokens=row.cached_input_tokens,
            provider_output_tokens=row.output_tokens,
        )
        if not candidates:
            draft.reason_code = Reason.MISSING_EVENTS
            draft.reason = "no usage event has this request id: the event is missing on our side"
            if model_id is None:
                draft.reason += f" (and {row.model!r} is not a catalog model or alias)"
            self.writer.add(draft)
            return
        event = candidates[0]
        ours = event.tokens
        verdict = compare(
            Comparison(
                calculated=event.cost_usd,
                actual=row.cost_usd,
                ours=ours,
                theirs=Tokens(row.input_tokens, row.cached_input_tokens, row.output_tokens, 1),
                price=self._price(event),
                currency=row.currency,
                model_problem=self._model_problem(row, model_id, event),
                subject="the gateway",
                one_request=True,
            ),
            self.tolerance,
        )
        if verdict.status == Status.MATCHED and row.currency == "USD":
            self._matched(row, event)
            return
        draft.model_id = event.model_id
        draft.usage_event_id = event.id
        draft.calculated_usd = event.cost_usd
        draft.events = 1
        draft.input_tokens, draft.cached_input_tokens, draft.output_tokens = ours.input, ours.cached, ours.output
        draft.status = verdict.status
        draft.difference_usd = verdict.difference
        draft.reason_code, draft.reason = verdict.reason_code, verdict.reason
        draft.implied_input_per_million = verdict.implied.get("input")
        draft.implied_cached_input_per_million = verdict.implied.get("cached_input")
        draft.implied_output_per_million = verdict.implied.get("output")
        self.writer.add(draft)
        self.matched_ids.add(event.id)
        self._event_update(event, row, verdict.status)

    def _matched(self, row: RequestRow, event: _Event) -> None:
        key = (row.occurred_at.date(), event.model_id)
        rollup = self.rollups.get(key)
        if rollup is None:
            rollup = self.rollups[key] = _Rollup(first_line=row.line, model_name=row.model)
        rollup.count += 1
        rollup.calculated += event.cost_usd
        rollup.actual += row.cost_usd
        tokens = rollup.tokens
        tokens[0] += event.input_tokens
        tokens[1] += event.cached_input_tokens
        tokens[2] += event.output_tokens
        tokens[3] += row.input_tokens
        tokens[4] += row.cached_input_tokens
        tokens[5] += row.output_tokens
        self.matched_ids.add(event.id)
        self._event_update(event, row, Status.MATCHED)

    @staticmethod
    def _model_problem(row: RequestRow, model_id: str | None, event: _Event) -> tuple[str, str] | None:
        if model_id is None:
            return (
                Reason.MODEL_ALIAS,
                f"the gateway's model {row.model!r} is not a catalog model or alias (the event was rated as "
                f"{event.model_id})",
            )
        if model_id != event.model_id:
            return (
                Reason.MODEL_DIFFERS,
                f"the gateway logged {row.model!r} ({model_id}); the event was rated as {event.model_id}",
            )
        return None

    def _event_update(self, event: _Event, row: RequestRow, status: str) -> None:
        if row.currency != "USD":
            return  # a cost in another currency is not the event's actual USD cost
        actual = precise(row.cost_usd)
        if event.actual_cost_usd == actual and event.reconciliation_status == status:
            return
        self.updates.append((event.id, actual, status))

    # --- writes -----------------------------------------------------------------------------------------------------

    def _send_updates(self, updates: list[tuple[int, Decimal, str]]) -> None:
        if not updates:
            return
        self.events_updated += len(updates)
        if connection.vendor == "postgresql":
            # one statement per status, the ids and amounts as array literals: joining their text is several times
            # cheaper than psycopg adapting a list element by element, and both are plain numbers
            by_status: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
            for event_id, actual, status in updates:
                ids, actuals = by_status[status]
                ids.append(str(event_id))
                actuals.append(str(actual))
            table = connection.ops.quote_name(UsageEvent._meta.db_table)
            with connection.cursor() as cursor:
                for status, (ids, actuals) in by_status.items():
                    cursor.execute(
                        f"UPDATE {table} AS e SET actual_cost_usd = u.actual, reconciliation_status = %s, "  # noqa: S608 - names from the model, values bound
                        "reconciled_at = %s FROM unnest(%s::bigint[], %s::numeric[]) AS u(id, actual) WHERE e.id = u.id",
                        [status, self.as_of, "{" + ",".join(ids) + "}", "{" + ",".join(actuals) + "}"],
                    )
            return
        UsageEvent.objects.bulk_update(
            [
                UsageEvent(id=event_id, actual_cost_usd=actual, reconciliation_status=status, reconciled_at=self.as_of)
                for event_id, actual, status in updates
            ],
            ["actual_cost_usd", "reconciliation_status", "reconciled_at"],
            batch_size=500,
        )

    def rollups_write(self) -> None:
        """One `matched` line per UTC day x model, standing for its matched requests."""
        for (day, model_id), rollup in sorted(self.rollups.items()):
            tokens = rollup.tokens
            self.writer.add(
                LineDraft(
                    status=Status.MATCHED,
                    key=f"{day.isoformat()}|{model_id}|matched requests",
                    line_number=rollup.first_line,
                    day=day,
                    model_name=rollup.model_name,
                    model_id=model_id,
                    calculated_usd=rollup.calculated,
                    actual_usd=rollup.actual,
                    difference_usd=rollup.actual - rollup.calculated,
                    events=rollup.count,
                    input_tokens=tokens[0],
                    cached_input_tokens=tokens[1],
                    output_tokens=tokens[2],
                    provider_input_tokens=tokens[3],
                    provider_cached_input_tokens=tokens[4],
                    provider_output_tokens=tokens[5],
                    reason=f"{rollup.count:,} request{'s' if rollup.count != 1 else ''} matched",
                ),
                weight=rollup.count,
            )
        self.writer.flush()

    def not_in_export(self) -> None:
        """Events in the file's time span that no row matched: one line each."""
        start, end = self.coverage.start, self.coverage.end
        if start is None or end is None:
            return
        events = (
            UsageEvent.objects.filter(self.matched_ids.unmatched(), occurred_at__gte=start, occurred_at__lte=end)
            .order_by()
            .values_list(*EVENT_FIELDS)
        )
        for values in events.iterator(chunk_size=CHUNK):
            event = _Event._make(values)
            self.writer.add(
                LineDraft(
                    status=Status.NOT_IN_EXPORT,
                    key=event.request_id,
                    day=event.occurred_at.date(),
                    model_id=event.model_id,
                    request_id=event.request_id,
                    usage_event_id=event.id,
                    calculated_usd=event.cost_usd,
                    difference_usd=-event.cost_usd,
                    events=1,
                    input_tokens=event.input_tokens,
                    cached_input_tokens=event.cached_input_tokens,
                    output_tokens=event.output_tokens,
                    reason_code=Reason.NOT_LOGGED,
                    reason=f"the gateway log has no row for this event (account {event.account_id})",
                )
            )
        self.writer.flush()


def request_file_reconcile(
    *,
    run: ReconciliationRun,
    provider_file: ProviderFile,
    snapshot: CatalogSnapshot,
    tolerance: Tolerance,
    writer: LineWriter,
    as_of: datetime,
    slack: timedelta,
) -> RequestOutcome:
    """Match every request row, record each matched event's actual cost, then list our events the log lacks."""
    matcher = _Matcher(snapshot=snapshot, tolerance=tolerance, writer=writer, as_of=as_of, slack=slack)
    matcher.read(provider_file)
    matcher.rollups_write()
    matcher.not_in_export()
    matcher.matched_ids.drop()  # on a failure the run's transaction rolls back, and the table with it
    return RequestOutcome(coverage=matcher.coverage, events_updated=matcher.events_updated)
