"""GET /healthz: the state of each dependency.

503 when the database is down (nothing can be served). A down cache or broker answers 200 with status `degraded`
and names it under `degraded`: the process still records usage and serves reads (rate-limited endpoints answer
503 without Redis, queued work waits for the sweeps), so a load balancer must not take every process out for it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from config.celery import app as celery_app
from core.cache import cache_mark_down
from core.models import WorkerHeartbeat


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "unreachable" to a health check
        return f"error: {type(exc).__name__}: {exc}".strip()
    return "ok"


def cache_status() -> str:
    key = f"healthz:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=5)
        value = cache.get(key)
        cache.delete(key)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return "ok" if value == "1" else "error: value written was not read back"


def broker_status() -> str:
    url = celery_app.conf.broker_url or ""
    if url.startswith("filesystem://"):
        folder = Path(celery_app.conf.broker_transport_options.get("data_folder_in", ""))
        if not folder.is_dir():
            return f"error: broker folder {folder} does not exist"
        probe = folder / f".healthz-{uuid.uuid4().hex}"
        try:
            probe.write_text("1")
            probe.unlink()
        except OSError as exc:
            return f"error: broker folder {folder} is not writable: {exc}"
        return "ok"
    try:
        with celery_app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


def worker_status() -> dict[str, object]:
    try:
        last = WorkerHeartbeat.objects.order_by("-beat_at").values_list("beat_at", flat=True).first()
    except Exception:
        return {"status": "unknown", "last_heartbeat": None, "age_seconds": None}
    if last is None:
        return {"status": "unknown", "last_heartbeat": None, "age_seconds": None}
    age = (timezone.now() - last).total_seconds()
    state = "ok" if age <= settings.WORKER_HEARTBEAT_STALE_SECONDS else "stale"
    return {"status": state, "last_heartbeat": last.isoformat(), "age_seconds": round(age, 1)}


@transaction.non_atomic_requests
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_status(), "cache": cache_status(), "broker": broker_status()}
    failed = [name for name, state in checks.items() if state != "ok"]
    # The worker is reported, not required: a web process is healthy while workers restart.
    worker = worker_status() if "database" not in failed else {"status": "unknown"}
    down = "database" in failed
    state = "error" if down else ("degraded" if failed else "ok")
    body: dict[str, object] = {"status": state, **checks, "worker": worker}
    if checks["cache"] != "ok":
        cache_mark_down()  # the catalog and the rate limits skip it at once instead of trying it again
        body["rate_limits"] = "unavailable: rate-limited endpoints answer 503"
    if failed:
        body["failed"] = failed
        if not down:
            body["degraded"] = failed
    return JsonResponse(body, status=503 if down else 200)
