"""The demo's reconciliation run: a gateway's request log built from the demo's own requests of one day, as a
gateway in front of the providers would write it, with what such logs really show: a few requests billed 10 % above
the catalog (a provider's price rose) and one request that did not go through the gateway."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

from reconciliation.models import ReconciliationRun
from reconciliation.services.runs import reconciliation_run
from usage.models import UsageEvent

FILE_PREFIX = "demo-gateway-log-"
DAYS_BACK = 3  # a recent day, in the open period
RAISED_MODEL = "gpt-4o-mini"
RAISED = 3
PRICE_RISE = Decimal("1.1")
HEADER = ["request_id", "timestamp", "model", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"]


def gateway_log(events: list[UsageEvent]) -> bytes:
    """The log of these events: the first RAISED of RAISED_MODEL at 10 % more, the middle one left out (inside the
    log's time span, so the run finds it missing from the log)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    raised = 0
    left_out = len(events) // 2
    for event in events[:left_out] + events[left_out + 1 :]:
        cost = event.cost_usd
        if event.model_id == RAISED_MODEL and raised < RAISED:
            cost, raised = cost * PRICE_RISE, raised + 1
        writer.writerow([
            event.request_id, event.occurred_at.isoformat(), event.model_id, event.input_tokens,
            event.output_tokens, event.cached_input_tokens, f"{cost.normalize():f}",
        ])  # fmt: skip
    return out.getvalue().encode()


def reconciliation_seed(*, start: datetime, now: datetime) -> int | None:
    """Reconcile one day of the demo's requests, once: the run's id, or None when a demo run exists already."""
    if ReconciliationRun.objects.filter(file_name__startswith=FILE_PREFIX).exists():
        return None
    day = datetime.combine((now - timedelta(days=DAYS_BACK)).date(), start.timetz())
    events = list(
        UsageEvent.objects.filter(occurred_at__gte=day, occurred_at__lt=day + timedelta(days=1)).order_by(
            "occurred_at", "id"
        )
    )
    if not events:
        return None
    result = reconciliation_run(
        source="requests",
        file=io.BytesIO(gateway_log(events)),
        file_name=f"{FILE_PREFIX}{day:%Y-%m-%d}.csv",
        as_of=now,
    )
    return result.summary["run_id"]
