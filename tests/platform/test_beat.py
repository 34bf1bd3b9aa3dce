"""In the PostgreSQL + Redis run: a real Celery worker and beat run a scheduled job end to end (not eager)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.models import JobRun
from tests.platform.test_worker import _test_database_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_beat_sends_a_database_scheduled_job_that_a_worker_runs():
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="test: expire reservations", task="jobs.expire_reservations", interval=every_second
    )
    queue = f"beat-test-{os.getpid()}-{time.monotonic_ns()}"
    PeriodicTask.objects.filter(name="test: expire reservations").update(queue=queue)
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": str(settings.REDIS_URL)}
    common = [sys.executable, "-m", "celery", "-A", "config"]
    worker = subprocess.Popen(
        [*common, "worker", "--pool", "solo", "-Q", queue, "--loglevel", "WARNING"], cwd=ROOT, env=env
    )
    beat = subprocess.Popen(
        [*common, "beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--loglevel", "WARNING",
         "--max-interval", "1"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not JobRun.objects.filter(job="expire_reservations").exists():
            time.sleep(0.5)
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    run = JobRun.objects.filter(job="expire_reservations").first()
    assert run is not None, "beat and the worker did not run the job within 90 s"
    assert run.status == "succeeded"
    assert run.counts == {"expired": 0}
