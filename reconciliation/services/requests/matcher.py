"""Matching a gateway log's request rows to our events by request id, a chunk of rows at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection

from pricing.catalog import CatalogSnapshot, ModelPriceVersion
from pricing.errors import NoPriceInForce, UnknownModel
from reconciliation.conf import Tolerance
from reconciliation.matching import Comparison, Tokens, compare
from reconciliation.models import ReconciliationLine
from reconciliation.parsers import ParsedRow, ProviderFile, RequestRow, RowError
from reconciliation.services.buckets import Coverage
from reconciliation.services.lines import LineDraft, LineWriter
from reconciliation.services.requests.events import CHUNK, Event, MatchedIds, SeenEvents, events_by_request_id
from reconciliation.services.requests.request_lines import Rollups
from reconciliation.services.requests.updates import EventUpdates

Status = ReconciliationLine.Status
Reason = ReconciliationLine.Reason

FALLBACK_CHUNK = 20_000


class Matcher:
    """One gateway log read against our events: each row matched, a discrepancy or not found."""

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
        self.slack = slack
        self.coverage = Coverage()
        self.pending: list[RequestRow] = []
        self.updates = EventUpdates(as_of=as_of)
        self.rollups = Rollups()
        self.matched_ids = MatchedIds()
        self.seen = SeenEvents()
        self._model_ids: dict[str, str | None] = {}
        self._pipelined = connection.vendor == "postgresql"

    def read(self, provider_file: ProviderFile) -> None:
        rows = iter(provider_file.rows)
        chunk = self._take(rows)
        sent: list[tuple[int, Decimal, str]] = []
        while chunk:
            found = self._events_for(chunk)  # waits for the previous chunk's event updates, if still running
            with self._overlap():
                self.updates.send(sent)  # applied by the server while this chunk is matched and the next read
                for row, candidates in found:
                    self._resolve(row, candidates)
                chunk = self._take(rows)
            sent = self.updates.take()
            self.writer.flush()
            self.matched_ids.flush()
            if len(self.pending) >= FALLBACK_CHUNK:
                self._resolve_pending()
        self.updates.send(sent)
        self._resolve_pending()
        self.updates.send(self.updates.take())
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

    def _events_for(self, rows: list[RequestRow]) -> list[tuple[RequestRow, list[Event]]]:
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
        found = events_by_request_id(list(first_line), low - self.slack, high + self.slack)
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
        found = events_by_request_id(list({row.request_id for row in rows}), None, None)
        for row in rows:
            self._resolve(row, found.get(row.request_id, []))
        self.writer.flush()
        self.matched_ids.flush()

    def _model_id(self, name: str) -> str | None:
        if name not in self._model_ids:
            try:
                self._model_ids[name] = self.snapshot.find_model(name).model_id
            except UnknownModel:
                self._model_ids[name] = None
        return self._model_ids[name]

    def _price(self, event: Event) -> ModelPriceVersion | None:
        entry = self.snapshot.models.get(event.model_id)
        if entry is None:
            return None
        at = event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(tzinfo=UTC)
        try:
            return entry.price_at(at)
        except NoPriceInForce:
            return None

    def _resolve(self, row: RequestRow, candidates: list[Event]) -> None:
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
        self.updates.add(event, row, verdict.status)

    def _matched(self, row: RequestRow, event: Event) -> None:
        self.rollups.add(row, event)
        self.matched_ids.add(event.id)
        self.updates.add(event, row, Status.MATCHED)

    @staticmethod
    def _model_problem(row: RequestRow, model_id: str | None, event: Event) -> tuple[str, str] | None:
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
