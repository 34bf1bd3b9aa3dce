"""Running a scheduled job: one at a time across workers, recorded as a JobRun, summarised in one log line.

The lock is a PostgreSQL advisory lock held by a dedicated connection for the job's duration, or a cache lock
(add-if-absent with a timeout) elsewhere. A job that finds the lock taken records a skipped run and returns.

A run holds a lease (`JobRun.lease_expires_at`) that a background thread renews every quarter of
JOB_LEASE_SECONDS while the work runs. A process that dies (kill -9, a lost machine) stops renewing it: the run is
then shown as `abandoned`, the cache lock it held is taken over, and the next run of the same job, once it holds
the lock (proof that no process runs it), records the dead runs as `abandoned`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.integrity import Problem
from core.models import JobRun

logger = logging.getLogger("tokenledger.jobs")

LOCK_TIMEOUT_SECONDS = 3600


def parse_as_of(as_of: str | datetime | None) -> datetime:
    """A job's `as_of`: an aware datetime or ISO 8601 text; now when not given."""
    if as_of is None:
        return timezone.now()
    if isinstance(as_of, datetime):
        moment = as_of
    else:
        parsed = parse_datetime(as_of)
        if parsed is None:
            raise ValueError(f"as_of must be an ISO 8601 time, got {as_of!r}")
        moment = parsed
    if timezone.is_naive(moment):
        raise ValueError("as_of must carry a time zone")
    return moment


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"tokenledger-job:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def job_lock(name: str) -> Iterator[bool]:
    """Yield True when this process holds the job's lock, False when another one does."""
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        # a lock held on a separate connection survives the job's own transactions and dies with it on a crash
        alias = "default"
        conn = connections.create_connection(alias)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                acquired = bool(cursor.fetchone()[0])
            try:
                yield acquired
            finally:
                if acquired:
                    with conn.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        finally:
            conn.close()
        return
    token = uuid.uuid4().hex
    cache_key = f"job-lock:{name}"
    taken = cache.add(cache_key, token, timeout=LOCK_TIMEOUT_SECONDS)
    running = JobRun.objects.filter(job=name, status=JobRun.Status.RUNNING)
    alive = running.filter(lease_expires_at__gte=timezone.now()).exists()
    if not taken and not alive and running.exists():  # the holder died: its lease expired, its lock is taken over
        cache.delete(cache_key)
        taken = cache.add(cache_key, token, timeout=LOCK_TIMEOUT_SECONDS)
    elif taken and alive:  # the lock timed out under a run that still renews its lease: it keeps the job
        cache.delete(cache_key)
        taken = False
    try:
        yield taken
    finally:
        if taken and cache.get(cache_key) == token:
            cache.delete(cache_key)


def _lease() -> timedelta:
    return timedelta(seconds=settings.JOB_LEASE_SECONDS)


def job_runs_abandon(*, name: str, taken_over_by: int) -> int:
    """Record the job's `running` runs as abandoned: called by a run that holds the job's lock, so none of them
    can still be alive. Returns how many."""
    now = timezone.now()
    return JobRun.objects.filter(job=name, status=JobRun.Status.RUNNING).exclude(pk=taken_over_by).update(
        status=JobRun.Status.ABANDONED, finished_at=now,
        error=f"its process died (lease not renewed); taken over by run {taken_over_by} at {now.isoformat()}",
    )  # fmt: skip


def job_runs_problems() -> list[Problem]:
    """Integrity: no job record is `running` without a live process (its lease expired, or it has none and started
    longer ago than the lock's timeout)."""
    now = timezone.now()
    dead = JobRun.objects.filter(status=JobRun.Status.RUNNING).filter(
        Q(lease_expires_at__lt=now)
        | Q(lease_expires_at__isnull=True, started_at__lt=now - timedelta(seconds=LOCK_TIMEOUT_SECONDS))
    )
    return [
        Problem("job_running_has_live_process", f"job run {run.pk} ({run.job}, pid {run.pid} on {run.host or '?'})",
                "a process renewing its lease", f"lease expired at {run.lease_expires_at or run.started_at:%Y-%m-%d %H:%M:%S}")
        for run in dead
    ]  # fmt: skip


class _LeaseKeeper(threading.Thread):
    """Renews a run's lease until stopped; dies with the process, which is the point."""

    def __init__(self, run_id: int) -> None:
        super().__init__(name=f"job-lease-{run_id}", daemon=True)
        self.run_id = run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_LEASE_SECONDS / 4):
                try:
                    JobRun.objects.filter(pk=self.run_id, status=JobRun.Status.RUNNING).update(
                        lease_expires_at=timezone.now() + _lease()
                    )
                except Exception:
                    logger.warning("job run %s: the lease was not renewed", self.run_id, exc_info=True)
        finally:
            connection.close()


def job_run(name: str, as_of: str | datetime | None, work: Callable[[datetime], dict[str, Any]]) -> dict[str, Any]:
    """Run `work(as_of)` under the job's lock, record the run and log one summary line. Returns the counts."""
    moment = parse_as_of(as_of)
    started = timezone.now()
    with job_lock(name) as acquired:
        if not acquired:
            JobRun.objects.create(job=name, as_of=moment, started_at=started, finished_at=timezone.now(),
                                  status=JobRun.Status.SKIPPED)  # fmt: skip
            logger.info("job %s as_of=%s skipped: another worker holds the lock", name, moment.isoformat())
            return {"skipped": True}
        run = JobRun.objects.create(job=name, as_of=moment, started_at=started, lease_expires_at=started + _lease(),
                                    host=socket.gethostname()[:200], pid=os.getpid())  # fmt: skip
        abandoned = job_runs_abandon(name=name, taken_over_by=run.pk)
        if abandoned:
            logger.warning("job %s: %s earlier run(s) had died and were marked abandoned", name, abandoned)
        keeper = _LeaseKeeper(run.pk)
        keeper.start()
        try:
            counts = work(moment)
        except Exception as exc:
            run.status, run.finished_at = JobRun.Status.FAILED, timezone.now()
            run.error = "".join(traceback.format_exception(exc))[-5000:]
            run.save(update_fields=["status", "finished_at", "error"])
            logger.exception("job %s as_of=%s failed: %s", name, moment.isoformat(), exc)
            raise
        finally:
            keeper.stopped.set()
            keeper.join()
        run.status, run.finished_at, run.counts = JobRun.Status.SUCCEEDED, timezone.now(), counts
        run.save(update_fields=["status", "finished_at", "counts"])
        seconds = (run.finished_at - started).total_seconds()
        summary = " ".join(f"{k}={v}" for k, v in counts.items())
        logger.info("job %s as_of=%s ok in %.2fs %s", name, moment.isoformat(), seconds, summary,
                    extra={"job": name, "counts": counts, "seconds": round(seconds, 3)})  # fmt: skip
        return counts
