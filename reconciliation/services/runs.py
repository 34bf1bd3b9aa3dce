"""A reconciliation run: one provider file read, matched and recorded with its lines, counts and totals."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from pricing.money import precise
from pricing.selectors import catalog_snapshot
from reconciliation.conf import Tolerance, reconciliation_settings
from reconciliation.models import ReconciliationLine, ReconciliationRun
from reconciliation.parsers import REQUESTS, SOURCES, BinaryReadable, UnreadableFile, provider_file_open
from reconciliation.selectors import run_earlier_same_file, run_summary
from reconciliation.services.buckets import Coverage, bucket_file_reconcile
from reconciliation.services.lines import LineWriter
from reconciliation.services.requests import request_file_reconcile

Actor = AbstractBaseUser | AnonymousUser | None
Status = ReconciliationLine.Status
HASH_BLOCK = 1024 * 1024
RATE_PLACES = Decimal("0.0001")


class SeekableBinary(BinaryReadable, Protocol):
    def seek(self, offset: int, whence: int = ..., /) -> int: ...


@dataclass(frozen=True)
class RunResult:
    """What a run found: its summary (CONTRACT.md's, plus not_in_export) and the run itself (None for a dry run)."""

    summary: dict[str, Any]
    run: ReconciliationRun | None
    same_file_as: ReconciliationRun | None


def file_fingerprint(file: SeekableBinary) -> tuple[str, int]:
    """The SHA-256 and size of a file, read from the start; the file is left at its start again."""
    file.seek(0)
    digest = hashlib.sha256()
    size = 0
    while block := file.read(HASH_BLOCK):
        digest.update(block)
        size += len(block)
    file.seek(0)
    return digest.hexdigest(), size


def _actor(actor: Actor) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _tolerance(*, source: str, pct: Decimal | None, usd: Decimal | None) -> Tolerance:
    config = reconciliation_settings()
    default = config.request_tolerance if source == REQUESTS else config.bucket_tolerance
    return Tolerance(pct=default.pct if pct is None else pct, usd=default.usd if usd is None else usd)


def match_rate(*, matched: int, discrepancy: int, not_found: int) -> Decimal | None:
    compared = matched + discrepancy + not_found
    if not compared:
        return None
    return (Decimal(matched) / Decimal(compared)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def reconciliation_run(
    *,
    source: str | None,
    file: SeekableBinary,
    file_name: str,
    actor: Actor = None,
    tolerance_pct: Decimal | None = None,
    tolerance_usd: Decimal | None = None,
    dry_run: bool = False,
    as_of: datetime | None = None,
    trigger: str = ReconciliationRun.Trigger.COMMAND,
) -> RunResult:
    """Reconcile one provider file (its source named, or told from its header) and record the run with its lines.

    A `requests` file also sets each matched event's actual cost, status and reconciled time; running the same file
    again changes no event. A dry run does all of it in a transaction that is rolled back. Raises UnreadableFile
    (after recording a failed run) when the file cannot be read at all; bad rows are error lines, never a failure.
    """
    if source is not None and source not in SOURCES:
        raise UnreadableFile(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    for name, value in (("tolerance_pct", tolerance_pct), ("tolerance_usd", tolerance_usd)):
        if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value < 0):
            raise ValueError(f"{name} must be a Decimal >= 0")
    as_of = as_of or timezone.now()
    sha256, size = file_fingerprint(file)
    arguments = {
        "source": source,
        "file": file,
        "file_name": file_name.replace("\x00", "")[:255] or "upload",  # no text column holds a NUL
        "actor": _actor(actor),
        "tolerance_pct": tolerance_pct,
        "tolerance_usd": tolerance_usd,
        "as_of": as_of,
        "trigger": trigger,
        "sha256": sha256,
        "size": size,
    }
    if not dry_run:
        return _run(**arguments, dry_run=False)
    with transaction.atomic():
        result = _run(**arguments, dry_run=True)
        transaction.set_rollback(True)
    return RunResult(summary={**result.summary, "run_id": None}, run=None, same_file_as=result.same_file_as)


def _run(
    *,
    source: str | None,
    file: SeekableBinary,
    file_name: str,
    actor: Any,
    tolerance_pct: Decimal | None,
    tolerance_usd: Decimal | None,
    as_of: datetime,
    trigger: str,
    sha256: str,
    size: int,
    dry_run: bool,
) -> RunResult:
    clock = time.perf_counter()
    earlier = run_earlier_same_file(sha256=sha256)
    run = ReconciliationRun.objects.create(
        source=source or "",
        file_name=file_name,
        sha256=sha256,
        size_bytes=size,
        actor=actor,
        trigger=trigger,
        same_file_as=earlier,
        as_of=as_of,
        started_at=timezone.now(),
        options={"source_named": source is not None, "dry_run": dry_run},
    )
    try:
        provider_file = provider_file_open(file, source=source)
    except UnreadableFile as exc:
        _run_fail(run, str(exc), clock)
        raise
    tolerance = _tolerance(source=provider_file.source, pct=tolerance_pct, usd=tolerance_usd)
    run.source, run.file_format = provider_file.source, provider_file.file_format
    run.options = {
        **run.options,
        "tolerance_pct": str(tolerance.pct),
        "tolerance_usd": str(tolerance.usd),
        "columns": list(provider_file.columns[:50]),
    }
    try:
        with transaction.atomic():
            writer = LineWriter(run)
            snapshot = catalog_snapshot()
            events_updated = 0
            if provider_file.source == REQUESTS:
                slack = timedelta(seconds=reconciliation_settings().request_time_slack_seconds)
                outcome = request_file_reconcile(
                    run=run,
                    provider_file=provider_file,
                    snapshot=snapshot,
                    tolerance=tolerance,
                    writer=writer,
                    as_of=as_of,
                    slack=slack,
                )
                coverage, events_updated = outcome.coverage, outcome.events_updated
            else:
                coverage = bucket_file_reconcile(
                    provider_file=provider_file, snapshot=snapshot, tolerance=tolerance, writer=writer
                )
            writer.flush()
            _run_finish(run, writer, coverage, events_updated, clock)
    except Exception as exc:
        _run_fail(run, f"{type(exc).__name__}: {exc}", clock)
        raise
    return RunResult(summary=run_summary(run), run=run, same_file_as=earlier)


def _run_finish(
    run: ReconciliationRun, writer: LineWriter, coverage: Coverage, events_updated: int, clock: float
) -> None:
    counts = writer.counts
    run.rows = coverage.rows
    run.empty_buckets = coverage.empty_buckets
    run.period_start, run.period_end = coverage.start, coverage.end
    run.matched = counts[Status.MATCHED]
    run.discrepancy = counts[Status.DISCREPANCY]
    run.not_found = counts[Status.NOT_FOUND]
    run.not_in_export = counts[Status.NOT_IN_EXPORT]
    run.errors = counts[Status.ERROR]
    run.events_updated = events_updated
    run.total_calculated_usd = precise(writer.total_calculated)
    run.total_actual_usd = precise(writer.total_actual)
    run.difference_usd = precise(writer.total_actual - writer.total_calculated)
    run.match_rate = match_rate(matched=run.matched, discrepancy=run.discrepancy, not_found=run.not_found)
    run.status = ReconciliationRun.Status.COMPLETED
    run.finished_at = timezone.now()
    run.duration_ms = int((time.perf_counter() - clock) * 1000)
    run.save()


def _run_fail(run: ReconciliationRun, message: str, clock: float) -> None:
    run.status = ReconciliationRun.Status.FAILED
    run.failure = message.replace("\x00", "\\x00")[:2000]
    run.finished_at = timezone.now()
    run.duration_ms = int((time.perf_counter() - clock) * 1000)
    run.save()
