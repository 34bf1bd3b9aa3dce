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

from dataclasses import dataclass
from datetime import datetime, timedelta

from pricing.catalog import CatalogSnapshot
from reconciliation.conf import Tolerance
from reconciliation.models import ReconciliationRun
from reconciliation.parsers import ProviderFile
from reconciliation.services.buckets import Coverage
from reconciliation.services.lines import LineWriter
from reconciliation.services.requests.matcher import Matcher
from reconciliation.services.requests.request_lines import not_in_export_write


@dataclass
class RequestOutcome:
    coverage: Coverage
    events_updated: int = 0


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
    matcher = Matcher(snapshot=snapshot, tolerance=tolerance, writer=writer, as_of=as_of, slack=slack)
    matcher.read(provider_file)
    matcher.rollups.write(writer)
    not_in_export_write(writer=writer, coverage=matcher.coverage, matched_ids=matcher.matched_ids)
    matcher.matched_ids.drop()  # on a failure the run's transaction rolls back, and the table with it
    return RequestOutcome(coverage=matcher.coverage, events_updated=matcher.updates.events_updated)
