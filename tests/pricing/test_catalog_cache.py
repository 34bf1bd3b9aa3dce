"""The cached catalog: a committed write is seen on the next read, in this process and in every other one."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from pricing import services
from pricing.errors import CatalogValidationError
from pricing.models import AIModel, ModelPrice
from pricing.selectors import catalog_cache_invalidate, catalog_generation, catalog_snapshot

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 10, 1, 12, tzinfo=UTC)  # the event time the prices are read at
CHANGE = AT - timedelta(days=1)  # the new version starts before it
MADE = CHANGE - timedelta(days=7)  # and was entered ahead of time


def _input_price(model_id: str = "gpt-4o-mini", at: datetime = AT) -> Decimal:
    return catalog_snapshot().find_model(model_id).price_at(at).input_per_million


def _new_price(**values: object) -> ModelPrice:
    return services.model_price_set(
        model=AIModel.objects.get(model_id="gpt-4o-mini"),
        input_per_million="0.30",
        output_per_million="1.20",
        effective_from=CHANGE,
        now=MADE,
        **values,  # type: ignore[arg-type]
    )


class Rollback(Exception):
    pass


def test_a_committed_write_is_visible_on_the_next_call(seeded_catalog, django_capture_on_commit_callbacks):
    assert _input_price() == Decimal("0.15")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _new_price()

    assert callbacks, "the write registered no cache invalidation"
    assert _input_price() == Decimal("0.30")
    assert _input_price(at=CHANGE - timedelta(microseconds=1)) == Decimal("0.15")


def test_the_cached_catalog_changes_only_when_the_write_commits(seeded_catalog, django_capture_on_commit_callbacks):
    cached = catalog_snapshot()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _new_price()

    # not committed yet: every read is served from the cache, not the database
    assert catalog_snapshot() is cached
    assert _input_price() == Decimal("0.15")

    for callback in callbacks:  # the commit
        callback()

    assert catalog_snapshot() is not cached
    assert _input_price() == Decimal("0.30")


def test_a_write_that_rolls_back_invalidates_nothing(seeded_catalog, django_capture_on_commit_callbacks):
    cached = catalog_snapshot()
    generation = catalog_generation()

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Rollback), transaction.atomic():
        _new_price()
        raise Rollback

    assert callbacks == []
    assert catalog_generation() == generation
    assert catalog_snapshot() is cached
    assert not ModelPrice.objects.filter(effective_from=CHANGE).exists()


def test_a_refused_write_invalidates_nothing(seeded_catalog, django_capture_on_commit_callbacks):
    cached = catalog_snapshot()
    generation = catalog_generation()

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(CatalogValidationError):
        _new_price(image_price="-1")

    assert callbacks == []
    assert catalog_generation() == generation
    assert catalog_snapshot() is cached


def test_a_cache_flush_shows_a_write_made_outside_the_services(seeded_catalog):
    ModelPrice.objects.create(
        model=AIModel.objects.get(model_id="gpt-4o-mini"), effective_from=CHANGE, input_per_million=Decimal("0.31")
    )
    assert _input_price() == Decimal("0.15")  # nothing told the cache

    services.catalog_cache_flush()

    assert _input_price() == Decimal("0.31")


def test_the_cached_catalog_lives_at_most_its_ttl(seeded_catalog, settings, monkeypatch):
    # the local-memory cache, whose expiry follows time.time(), which time-machine moves; Redis keeps real time
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ttl"}}
    # shorter than the cache's default timeout, so only the catalog's own TTL can expire it
    settings.PRICING_CACHE_TTL_SECONDS = 60
    elapsed = [0.0]
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + elapsed[0])

    with time_machine.travel(timezone.now(), tick=False) as clock:
        catalog_cache_invalidate()
        cached = catalog_snapshot()
        # a write nothing invalidates (made outside the services, e.g. by a database fix)
        ModelPrice.objects.create(
            model=AIModel.objects.get(model_id="gpt-4o-mini"), effective_from=CHANGE, input_per_million=Decimal("0.31")
        )

        clock.shift(59)
        elapsed[0] = 59
        assert catalog_snapshot() is cached
        assert _input_price() == Decimal("0.15")

        clock.shift(2)
        elapsed[0] = 61
        assert _input_price() == Decimal("0.31")


# --- across processes, on PostgreSQL and Redis ------------------------------------------------------------------

SECOND_PROCESS = textwrap.dedent(
    """
    import os, sys
    from datetime import datetime

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from pricing.selectors import catalog_snapshot

    at = datetime.fromisoformat(sys.argv[1])
    print(catalog_snapshot().find_model("gpt-4o-mini").price_at(at).input_per_million, flush=True)
    sys.stdin.readline()
    print(catalog_snapshot().find_model("gpt-4o-mini").price_at(at).input_per_million, flush=True)
    """
)


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _read_line(process: subprocess.Popen[str], timeout: float = 60) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"the second process printed nothing within {timeout} s"
    line = process.stdout.readline()
    if not line:
        _, errors = process.communicate(timeout=10)
        pytest.fail(f"the second process exited with {process.returncode}:\n{errors}")
    return line.strip()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_committed_write_reaches_another_process_through_redis():
    call_command("seed_catalog", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    now = timezone.now()
    change, at = now + timedelta(days=1), now + timedelta(days=2)
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": str(settings.REDIS_URL),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SECOND_PROCESS, at.isoformat()],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert Decimal(_read_line(process)) == Decimal("0.15")

        services.model_price_set(  # commits here: the test runs without a wrapping transaction
            model=AIModel.objects.get(model_id="gpt-4o-mini"),
            input_per_million="0.30",
            output_per_million="1.20",
            effective_from=change,
        )
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()

        assert Decimal(_read_line(process)) == Decimal("0.30")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_a_generation_handed_over_by_the_key_lookup_serves_one_catalog_read(seeded_catalog, monkeypatch):
    from pricing.selectors import snapshot_cache

    current = catalog_generation()
    snapshot_cache.catalog_generation_seen(current)
    reads: list[str] = []
    real_get = snapshot_cache.cache.get

    def get(name: str, *args: Any) -> Any:
        reads.append(name)
        return real_get(name, *args)

    monkeypatch.setattr(snapshot_cache.cache, "get", get)
    assert catalog_generation() == current and reads == []  # the handed-over one, no cache read
    assert catalog_generation() == current and reads == [snapshot_cache.GENERATION_KEY]  # used once


def test_a_stale_handover_is_not_used_and_a_write_after_it_is_seen(
    seeded_catalog, monkeypatch, django_capture_on_commit_callbacks
):
    from pricing.selectors import snapshot_cache

    assert _input_price() == Decimal("0.15")
    snapshot_cache.catalog_generation_seen(catalog_generation())  # read before the write below
    clock = time.monotonic() + snapshot_cache._SEEN_SECONDS
    monkeypatch.setattr(snapshot_cache.time, "monotonic", lambda: clock)
    with django_capture_on_commit_callbacks(execute=True):
        _new_price()
    assert _input_price() == Decimal("0.30")  # the handover is a second old: the generation is read again
