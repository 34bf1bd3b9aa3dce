"""Scheduled jobs (beat sends them with no arguments: `as_of` is then the time the job starts).

Each takes an explicit `as_of`, runs under its lock through job_run (recorded as a JobRun) and is idempotent.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config import scheduled
from core.jobs import job_run
from core.models import WorkerHeartbeat


@shared_task(name="platform.heartbeat", acks_late=True, ignore_result=True)
def heartbeat(as_of: str | None = None) -> str:
    """Record that a worker on this host is alive at `as_of`; running it again only rewrites the time."""
    moment: datetime = (parse_datetime(as_of) if as_of else None) or timezone.now()
    WorkerHeartbeat.objects.update_or_create(worker=socket.gethostname(), defaults={"beat_at": moment})
    return moment.isoformat()


@shared_task(name="jobs.close_periods", acks_late=True)
def close_periods(as_of: str | None = None) -> dict[str, Any]:
    return job_run("close_periods", as_of, scheduled.close_periods)


@shared_task(name="jobs.send_outbox", acks_late=True)
def send_outbox(as_of: str | None = None) -> dict[str, Any]:
    return job_run("send_outbox", as_of, scheduled.send_outbox)


@shared_task(name="jobs.expire_reservations", acks_late=True)
def expire_reservations(as_of: str | None = None) -> dict[str, Any]:
    return job_run("expire_reservations", as_of, scheduled.expire_reservations)


@shared_task(name="jobs.check_integrity", acks_late=True)
def check_integrity(as_of: str | None = None) -> dict[str, Any]:
    return job_run("check_integrity", as_of, scheduled.check_integrity)


@shared_task(name="jobs.daily_cost_alerts", acks_late=True)
def daily_cost_alerts(as_of: str | None = None) -> dict[str, Any]:
    return job_run("daily_cost_alerts", as_of, scheduled.daily_cost_alerts)


@shared_task(name="jobs.alerts_sweep", acks_late=True)
def alerts_sweep(as_of: str | None = None) -> dict[str, Any]:
    return job_run("alerts_sweep", as_of, scheduled.alerts_sweep)


@shared_task(name="jobs.anomaly_scan", acks_late=True)
def anomaly_scan(as_of: str | None = None) -> dict[str, Any]:
    return job_run("anomaly_scan", as_of, scheduled.anomaly_scan)


@shared_task(name="jobs.weekly_summaries", acks_late=True)
def weekly_summaries(as_of: str | None = None) -> dict[str, Any]:
    return job_run("weekly_summaries", as_of, scheduled.weekly_summaries)


@shared_task(name="jobs.cleanup", acks_late=True)
def cleanup(as_of: str | None = None) -> dict[str, Any]:
    return job_run("cleanup", as_of, scheduled.cleanup)


@shared_task(name="jobs.expire_grants", acks_late=True)
def expire_grants(as_of: str | None = None) -> dict[str, Any]:
    return job_run("expire_grants", as_of, scheduled.expire_grants)
