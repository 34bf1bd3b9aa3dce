"""A task goes through a real Celery worker process on the Redis broker and writes to the real database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.tasks import heartbeat
from core.models import WorkerHeartbeat

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_worker_process():
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": str(settings.REDIS_URL)}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    queue = f"test-{os.getpid()}-{time.monotonic_ns()}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", queue, "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield queue
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_heartbeat_round_trip_through_a_real_worker(celery_worker_process):
    sent_at = "2026-11-21T12:00:00+00:00"
    heartbeat.apply_async(kwargs={"as_of": sent_at}, queue=celery_worker_process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = WorkerHeartbeat.objects.first()
        if row is not None:
            break
        time.sleep(0.25)
    assert row is not None, "the worker did not run the heartbeat task within 60 s"
    assert row.beat_at.isoformat() == sent_at
