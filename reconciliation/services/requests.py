"""Matching a gateway's per-request log against our usage events by request id, and recording the actual cost.

The file streams by in chunks of CHUNK rows. For each chunk one query fetches the events with those request ids
whose time is within the chunk's time span (plus a slack): the (occurred_at, model_id) index keeps that a range
scan. Ids not found there are looked up again without the time bound, many chunks at once. Each matched event gets
the gateway's cost as its `actual_cost_usd`, its status and `reconciled_at`, written per chunk, and only where
something changed, so running the same file again changes nothing. Events in the file's time span that no row named
become `not_in_export` lines.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef

from pricing.catalog import CatalogSnapshot, ModelPriceVersion
from pricing.errors import NoPriceInForce, UnknownModel
from pricing.money import precise
from reconciliation.conf import Tolerance
from reconciliation.matching import Comparison, Tokens, compare
from reconciliation.models import ReconciliationLine, ReconciliationRun
from reconciliation.parsers import ProviderFile, RequestRow, RowError
from reconciliation.services.buckets import Coverage
from reconciliation.services.lines import LineDraft, LineWriter
from usage.models import UsageEvent

Status = ReconciliationLine.Status
Reason = ReconciliationLine.Reason
EventStatus = UsageEvent.Reconciliation
CHUNK = 5000
FALLBACK_CHUNK = 20_000
EVENT_FIELDS = (
    "id", "request_id", "account_id", "model_id", "occurred_at", "input_tokens", "cached_input_tokens",
    "output_tokens", "cost_usd", "actual_cost_usd", "reconciliation_status",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Event:
    id: int
    request_id: str
    account_id: int
    model_id: str
    occurred_at: datetime
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
class RequestOutcome:
    coverage: Coverage
    events_updated: int = 0


class _Matcher:
    def __init__(
        self,
        *,
        run: ReconciliationRun,
        snapshot: CatalogSnapshot,
        tolerance: Tolerance,
        writer: LineWriter,
        as_of: datetime,
        slack: timedelta,
    ) -> None:
        self.run = run
        self.snapshot = snapshot
        self.tolerance = tolerance
        self.writer = writer
        self.as_of = as_of
        self.slack = slack
        self.coverage = Coverage()
        self.pending: list[RequestRow] = []
        self.updates: list[tuple[int, Decimal, str]] = []
        self.events_updated = 0
        self._model_ids: dict[str, str | None] = {}

    # --- the file ---------------------------------------------------------------------------------------------------

    def read(self, provider_file: ProviderFile) -> None:
        chunk: list[RequestRow] = []
        for item in provider_file.rows:
            self.coverage.rows += 1
            if isinstance(item, RequestRow):
                chunk.append(item)
                if len(chunk) >= CHUNK:
                    self._chunk(chunk)
                    chunk = []
            elif isinstance(item, RowError):
                self._error(item.line, item.reason, Reason.UNREADABLE)
            else:  # a bucket row cannot come from a requests file; keep the count honest all the same
                self._error(getattr(item, "line", 0), "not a request row", Reason.UNREADABLE)
        if chunk:
            self._chunk(chunk)
        self._resolve_pending()
        self._write_updates()

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

    def _chunk(self, rows: list[RequestRow]) -> None:
        first_line: dict[str, int] = {}
        unique: list[RequestRow] = []
        for row in rows:
            self.coverage.extend(row.occurred_at, row.occurred_at)
            seen = first_line.get(row.request_id)
            if seen is not None:
                self._error(row.line, f"request id repeated (first on line {seen})", Reason.UNREADABLE, row.request_id)
                continue
            first_line[row.request_id] = row.line
            unique.append(row)
        low = min(row.occurred_at for row in unique) - self.slack
        high = max(row.occurred_at for row in unique) + self.slack
        found = self._events(
            UsageEvent.objects.filter(request_id__in=list(first_line), occurred_at__gte=low, occurred_at__lte=high)
        )
        for row in unique:
            candidates = found.get(row.request_id)
            if candidates:
                self._resolve(row, candidates)
            else:
                self.pending.append(row)
        if len(self.pending) >= FALLBACK_CHUNK:
            self._resolve_pending()
        self._write_updates()

    def _resolve_pending(self) -> None:
        """The rows whose events were not in their chunk's time span: one query without the time bound."""
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        found = self._events(UsageEvent.objects.filter(request_id__in=list({row.request_id for row in rows})))
        for row in rows:
            self._resolve(row, found.get(row.request_id, []))

    @staticmethod
    def _events(queryset: Any) -> dict[str, list[_Event]]:
        found: dict[str, list[_Event]] = defaultdict(list)
        for values in queryset.order_by().values_list(*EVENT_FIELDS):
            event = _Event(*values)
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
        try:
            return entry.price_at(event.occurred_at)
        except NoPriceInForce:
            return None

    def _resolve(self, row: RequestRow, candidates: list[_Event]) -> None:
        model_id = self._model_id(row.model)
        if len(candidates) > 1 and model_id is not None:
            candidates = [e for e in candidates if e.model_id == model_id] or candidates
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
        theirs = Tokens(row.input_tokens, row.cached_input_tokens, row.output_tokens, 1)
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
        draft.model_id = event.model_id
        draft.usage_event_id = event.id
        draft.calculated_usd = event.cost_usd
        draft.events = 1
        draft.input_tokens, draft.cached_input_tokens, draft.output_tokens = ours.input, ours.cached, ours.output
        verdict = compare(
            Comparison(
                calculated=event.cost_usd,
                actual=row.cost_usd,
                ours=ours,
                theirs=theirs,
                price=self._price(event),
                currency=row.currency,
                model_problem=self._model_problem(row, model_id, event),
                subject="the gateway",
            ),
            self.tolerance,
        )
        draft.status = verdict.status
        draft.difference_usd = verdict.difference
        draft.reason_code, draft.reason = verdict.reason_code, verdict.reason
        draft.implied_input_per_million = verdict.implied.get("input")
        draft.implied_cached_input_per_million = verdict.implied.get("cached_input")
        draft.implied_output_per_million = verdict.implied.get("output")
        self.writer.add(draft)
        self._event_update(event, row, verdict.status)

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

    def _write_updates(self) -> None:
        if not self.updates:
            return
        updates, self.updates = self.updates, []
        self.events_updated += len(updates)
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(UsageEvent._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} AS e SET actual_cost_usd = u.actual, reconciliation_status = u.status, "  # noqa: S608 - names from the model, values bound
                    "reconciled_at = %s FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::numeric[]) AS actual, "
                    "unnest(%s::text[]) AS status) AS u WHERE e.id = u.id",
                    [self.as_of, [u[0] for u in updates], [u[1] for u in updates], [u[2] for u in updates]],
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

    def not_in_export(self) -> None:
        """Events in the file's time span that no row of this run matched."""
        start, end = self.coverage.start, self.coverage.end
        if start is None or end is None:
            return
        self.writer.flush()
        matched = ReconciliationLine.objects.filter(run=self.run, usage_event_id=OuterRef("pk"))
        events = (
            UsageEvent.objects.filter(occurred_at__gte=start, occurred_at__lte=end)
            .filter(~Exists(matched))
            .order_by()
            .values_list(*EVENT_FIELDS)
        )
        for values in events.iterator(chunk_size=CHUNK):
            event = _Event(*values)
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
                    reason_code=Reason.NOT_BILLED,
                    reason=f"the gateway log has no row for this event (account {event.account_id})",
                )
            )


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
    matcher = _Matcher(run=run, snapshot=snapshot, tolerance=tolerance, writer=writer, as_of=as_of, slack=slack)
    matcher.read(provider_file)
    matcher.not_in_export()
    return RequestOutcome(coverage=matcher.coverage, events_updated=matcher.events_updated)
