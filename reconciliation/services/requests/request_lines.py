"""The lines a gateway log adds beside its unmatched rows: matched requests rolled up per UTC day x model, and
our events in its time span that no row named."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from reconciliation.models import ReconciliationLine
from reconciliation.parsers import RequestRow
from reconciliation.services.buckets import Coverage
from reconciliation.services.lines import LineDraft, LineWriter
from reconciliation.services.requests.events import CHUNK, EVENT_FIELDS, Event, MatchedIds
from usage.models import UsageEvent

Status = ReconciliationLine.Status
Reason = ReconciliationLine.Reason
ZERO = Decimal(0)


@dataclass
class Rollup:
    """The matched requests of one UTC day x model."""

    first_line: int
    model_name: str
    count: int = 0
    calculated: Decimal = ZERO
    actual: Decimal = ZERO
    tokens: list[int] = field(default_factory=lambda: [0] * 6)  # ours in, cached, out; theirs in, cached, out


class Rollups:
    """The matched requests of a run, per UTC day x model."""

    def __init__(self) -> None:
        self.by_day_model: dict[tuple[date, str], Rollup] = {}

    def add(self, row: RequestRow, event: Event) -> None:
        key = (row.occurred_at.date(), event.model_id)
        rollup = self.by_day_model.get(key)
        if rollup is None:
            rollup = self.by_day_model[key] = Rollup(first_line=row.line, model_name=row.model)
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

    def write(self, writer: LineWriter) -> None:
        """One `matched` line per UTC day x model, standing for its matched requests."""
        for (day, model_id), rollup in sorted(self.by_day_model.items()):
            tokens = rollup.tokens
            writer.add(
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
        writer.flush()


def not_in_export_write(*, writer: LineWriter, coverage: Coverage, matched_ids: MatchedIds) -> None:
    """Events in the file's time span that no row matched: one line each."""
    start, end = coverage.start, coverage.end
    if start is None or end is None:
        return
    events = (
        UsageEvent.objects.filter(matched_ids.unmatched(), occurred_at__gte=start, occurred_at__lte=end)
        .order_by()
        .values_list(*EVENT_FIELDS)
    )
    for values in events.iterator(chunk_size=CHUNK):
        event = Event._make(values)
        writer.add(
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
    writer.flush()
