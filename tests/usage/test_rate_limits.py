"""Rate limits: the plan's requests per hour and ingest's events per minute, on Redis and on the local cache."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connections

from tests.factories import AccountFactory
from tests.throwaway_redis import throwaway_redis  # noqa: F401 - a fixture
from usage.throttling import rate_limit_take

pytestmark = pytest.mark.usefixtures("catalog")

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


@pytest.fixture(params=["local-memory", "redis"])
def cache_kind(request):
    """Each behaviour holds on the embedded local-memory cache and on a real Redis alike."""
    if request.param == "redis":
        request.getfixturevalue("throwaway_redis")
    return request.param


def _authorize(client, request_id):
    body = {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1, "max_output_tokens": 1}
    return client.post("/api/usage/authorize", body, format="json")


def _events(client, count, prefix):
    events = [
        {"request_id": f"{prefix}-{n}", "model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1}
        for n in range(count)
    ]
    return client.post("/api/usage/events", {"events": events}, format="json")


def test_requests_per_hour_refill_one_by_one_and_say_so_in_headers(cache_kind, api_client_for):
    account = AccountFactory.create(plan="free", credits="100")  # 100 requests an hour: one more every 36 s
    client = api_client_for(account)
    with time_machine.travel(NOW, tick=False) as clock:
        first = _authorize(client, "r0")
        assert first.status_code == 200
        assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"], first["X-RateLimit-Reset"]) == (
            "100", "99", "36",
        )  # fmt: skip
        for n in range(1, 100):
            assert _authorize(client, f"r{n}").status_code == 200
        refused = _authorize(client, "r100")
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert refused["Retry-After"] == "36"  # the next request fits in 36 s, not when an hour ends
        assert (refused["X-RateLimit-Remaining"], refused["X-RateLimit-Reset"]) == ("0", "3600")

        clock.shift(timedelta(seconds=35))
        assert _authorize(client, "r101").status_code == 429
        clock.shift(timedelta(seconds=1))
        again = _authorize(client, "r102")
        assert again.status_code == 200
        assert again["X-RateLimit-Remaining"] == "0"
        assert _authorize(client, "r103").status_code == 429

        clock.shift(timedelta(hours=1))
        assert _authorize(client, "r104")["X-RateLimit-Remaining"] == "99"


def test_other_accounts_have_their_own_allowance(cache_kind, api_client_for):
    busy, quiet = (AccountFactory.create(plan="free", credits="100") for _ in range(2))
    with time_machine.travel(NOW, tick=False):
        for n in range(100):
            _authorize(api_client_for(busy), f"b{n}")
        assert _authorize(api_client_for(busy), "b100").status_code == 429
        assert _authorize(api_client_for(quiet), "q0").status_code == 200


def test_events_per_minute_are_counted_in_events_not_requests(cache_kind, api_client_for, settings):
    settings.USAGE_EVENTS_PER_MINUTE = 10  # one more event every 6 s
    account = AccountFactory.create(plan="jive", credits="10000")
    client = api_client_for(account)
    with time_machine.travel(NOW, tick=False) as clock:
        batch = _events(client, 6, "a")
        assert batch.status_code == 200 and batch.json()["recorded"] == 6
        assert (batch["X-RateLimit-Limit"], batch["X-RateLimit-Remaining"]) == ("10", "4")

        over = _events(client, 5, "b")  # 5 do not fit in the 4 left: nothing of it is recorded
        assert over.status_code == 429
        assert over.json()["error"] == "rate_limited"
        assert over["Retry-After"] == "6"
        assert _events(client, 4, "b").json()["recorded"] == 4

        clock.shift(timedelta(seconds=6))
        assert _events(client, 1, "c").status_code == 200

        too_big = _events(client, 11, "d")  # can never fit: told to split it
        assert too_big.status_code == 429
        assert "smaller batches" in too_big.json()["message"]

        clock.shift(timedelta(minutes=1))
        single = client.post(
            "/api/usage/events",
            {"request_id": "e", "model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1},
            format="json",
        )
        assert single.status_code == 201 and single["X-RateLimit-Remaining"] == "9"


def test_authorize_is_not_slowed_by_the_events_limit(api_client_for, settings):
    settings.USAGE_EVENTS_PER_MINUTE = 1
    account = AccountFactory.create(plan="jive", credits="10000")
    client = api_client_for(account)
    assert _events(client, 1, "x").status_code == 200
    assert _events(client, 1, "y").status_code == 429
    assert _authorize(client, "z").status_code == 200


def test_a_race_on_redis_lets_exactly_the_limit_through(throwaway_redis):  # noqa: F811
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def caller() -> None:
        start.wait()
        for _ in range(20):
            decision = rate_limit_take(key="race", limit=100, period_seconds=3600)
            with lock:
                allowed.append(decision.allowed)

    with time_machine.travel(NOW, tick=False):
        threads = [threading.Thread(target=caller) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert (allowed.count(True), allowed.count(False)) == (100, 220)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_authorize_calls_on_redis_let_exactly_the_plans_limit_through(
    throwaway_redis,  # noqa: F811
    api_client_for,
):
    account = AccountFactory.create(plan="free", credits="100")
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def caller(worker: int) -> None:
        client = api_client_for(account)
        start.wait()
        try:
            for n in range(15):
                code = _authorize(client, f"w{worker}-{n}").status_code
                with lock:
                    statuses.append(code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=caller, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (statuses.count(200), statuses.count(429), len(statuses)) == (100, 20, 120)
