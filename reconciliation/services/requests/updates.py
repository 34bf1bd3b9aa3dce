"""The actual cost, status and time a run writes on each event it matched, sent a chunk at a time."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db import connection

from pricing.money import precise
from reconciliation.parsers import RequestRow
from reconciliation.services.requests.events import Event
from usage.models import UsageEvent


class EventUpdates:
    """The events' new actual cost and status; only where something changed, so the same file again writes none."""

    def __init__(self, *, as_of: datetime) -> None:
        self.as_of = as_of
        self.pending: list[tuple[int, Decimal, str]] = []
        self.events_updated = 0

    def add(self, event: Event, row: RequestRow, status: str) -> None:
        if row.currency != "USD":
            return  # a cost in another currency is not the event's actual USD cost
        actual = precise(row.cost_usd)
        if event.actual_cost_usd == actual and event.reconciliation_status == status:
            return
        self.pending.append((event.id, actual, status))

    def take(self) -> list[tuple[int, Decimal, str]]:
        """The updates gathered so far, to send; gathering starts afresh."""
        taken, self.pending = self.pending, []
        return taken

    def send(self, updates: list[tuple[int, Decimal, str]]) -> None:
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
