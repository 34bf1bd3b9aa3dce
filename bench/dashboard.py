"""Dashboard benchmark: the balance page's server time with 1,000,000 events in one account, against a bare page.

    .venv/bin/python bench/dashboard.py [--events 1000000] [--requests 60] [--days 60] [--keep-db]

PostgreSQL (127.0.0.1:5432, user postgres) and Redis (db 7, flushed at start) must be running. The script makes
its own database, migrates it and loads the seed catalog, creates one account whose owner signs in, and writes
`--events` usage events straight into usage_usageevent with COPY, spread over the last `--days` days and two
billing periods, then derives the daily rollups and the period counters from them with SQL (what recording keeps
up to date event by event). Then, in this process, with Django's test Client (the full middleware stack: session,
authentication, CSRF, request transaction, template rendering; no network), it requests in turn:

- `GET /` the balance page (what issue 9 times: target p95 < 150 ms),
- `GET /bench/bare` the baseline: a signed-in view that reads one row and renders a one-line template,
- `GET /usage/` the usage history's first page (keyset on the (account, occurred_at) index),

`--requests` times each, after a warm-up, and reports p50/p95/max and the SQL queries of one request of each.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import types
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

DATABASE = "tokenledger_bench_dashboard"
REDIS_URL = "redis://127.0.0.1:6379/7"
TARGET_P95_MS = 150.0
OWNER = "bench-owner@example.com"
# seed models the Starter plan may use, with their share of the events and provider prices per 1M tokens (in, out)
MODELS = [
    ("qwen-3-32b", 4, Decimal("0.10"), Decimal("0.10")),
    ("gpt-4o-mini", 3, Decimal("0.15"), Decimal("0.60")),
    ("claude-3-5-haiku", 2, Decimal("0.80"), Decimal("4.00")),
    ("meta-llama/llama-3.3-70b-instruct", 1, Decimal("0.35"), Decimal("0.35")),
]
OPERATIONS = ["chat_completion", "summarize", "rag_answer", ""]
TOKEN_SIZES = [(300, 120), (1200, 400), (4000, 900), (12000, 2000)]
CREDITS_PER_USD = Decimal(10_000)  # the seed catalog's rate
MILLION = Decimal(1_000_000)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the account (default 1000000)")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per page (default 60)")
    parser.add_argument("--days", type=int, default=60, help="days the events are spread over (default 60)")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    args = parser.parse_args()
    if args.events < 1 or args.requests < 10 or not 2 <= args.days <= 365:
        parser.error("need --events >= 1, --requests >= 10, 2 <= --days <= 365")
    return args


# --- the data ------------------------------------------------------------------------------------------------------


def prepare(name: str) -> None:
    """A fresh database with the schema and the seed catalog, Redis db 7 flushed; Django set up in this process."""
    import os

    import redis

    harness.log(f"database {name}: drop, create, migrate, seed_catalog; flush Redis db 7")
    harness.database_recreate(name)
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = harness.bench_env(database=name)
    env["REDIS_URL"] = REDIS_URL
    harness.manage("migrate", "--noinput", env=env)
    harness.manage("seed_catalog", env=env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "LOG_LEVEL")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def account_make(now: datetime, days: int) -> tuple[Any, dict[datetime, int]]:
    """The account (Starter plan, 5,000,000 credits, an owner) and the ids of the periods the events fall in."""
    from billing.models import BillingPeriod
    from billing.services.accounts import account_create
    from billing.services.periods import period_current

    # the owner is signed in with force_login: no password needed
    account, _ = account_create(name="Bench Shop", plan_code="starter", owner_email=OWNER, credits="5000000", as_of=now)
    periods: dict[datetime, int] = {}
    moment = now - timedelta(days=days)
    while moment <= now:
        period = period_current(account=account, as_of=moment)
        periods[period.start] = period.pk
        moment = period.end
    harness.log(f"account {account.pk}: {len(periods)} periods {sorted(p.date().isoformat() for p in periods)}")
    assert BillingPeriod.objects.filter(account=account).count() == len(periods)
    return account, periods


def events_copy(*, account: Any, periods: dict[datetime, int], count: int, now: datetime, days: int) -> float:
    """COPY `count` rated events into usage_usageevent; the seconds it took."""
    from django.db import connection

    from usage.models import UsageEvent

    columns = [str(f.column) for f in UsageEvent._meta.concrete_fields if f.column not in (None, "id")]
    rng = random.Random(9)  # the same data every run
    population = [m for m, weight, *_ in MODELS for _ in range(weight)]
    prices = {m: (p_in, p_out) for m, _, p_in, p_out in MODELS}
    rated: dict[tuple[str, int, int], tuple[str, str, str]] = {}
    for model, (p_in, p_out) in prices.items():
        for tokens_in, tokens_out in TOKEN_SIZES:
            usd = (tokens_in * p_in + tokens_out * p_out) / MILLION  # markup 1: the charge is the cost
            rated[(model, tokens_in, tokens_out)] = (f"{usd:f}", f"{usd:f}", f"{usd * CREDITS_PER_USD:f}")
    starts = sorted(periods)
    span = days * 86400
    batch = uuid.UUID(int=9)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection  # psycopg 3
        quoted = ", ".join(connection.ops.quote_name(c) for c in columns)  # `user` is a reserved word
        with raw.cursor() as pg, pg.copy(f"COPY usage_usageevent ({quoted}) FROM STDIN") as copy:
            for number in range(count):
                at = now - timedelta(seconds=rng.randrange(60, span))
                period_id = periods[max(s for s in starts if s <= at)]
                model = rng.choice(population)
                tokens_in, tokens_out = rng.choice(TOKEN_SIZES)
                cost, charge, credits = rated[(model, tokens_in, tokens_out)]
                values = {
                    "account_id": account.pk, "period_id": period_id, "request_id": f"bench-{number}",
                    "batch_id": batch, "model_id": model, "model_requested": model, "input_tokens": tokens_in,
                    "output_tokens": tokens_out, "cached_input_tokens": 0, "reasoning_tokens": 0, "images": 0,
                    "features": "[]", "multiplier": "1", "operation_type": OPERATIONS[number % len(OPERATIONS)],
                    "user": "", "conversation_id": "", "metadata": "{}", "occurred_at": at, "received_at": at,
                    "cost_usd": cost, "charge_usd": charge, "credits": credits, "units": "1", "breakdown": "{}",
                    "price_version_id": None, "feature_version_ids": "{}", "credits_rate": f"{CREDITS_PER_USD}",
                    "plan_code": "starter", "over_limit": False, "ip": None, "user_agent": "bench",
                    "actual_cost_usd": None, "reconciliation_status": "pending", "reconciled_at": None,
                }  # fmt: skip
                copy.write_row([values[c] for c in columns])
                if number and number % 200_000 == 0:
                    harness.log(f"  {number:,} events copied")
    return time.perf_counter() - started


def rollups_derive(account_id: int) -> None:
    """The daily rollups and the period counters, summed from the events in SQL (recording keeps them per batch)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO usage_dailyusage (account_id, day, model_id, operation_type, events, input_tokens, "
            "output_tokens, cost_usd, charge_usd, credits) "
            "SELECT account_id, (occurred_at AT TIME ZONE 'UTC')::date, model_id, operation_type, count(*), "
            "sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(charge_usd), sum(credits) "
            "FROM usage_usageevent WHERE account_id = %s GROUP BY 1, 2, 3, 4",
            [account_id],
        )
        cursor.execute(
            "UPDATE billing_billingperiod AS p SET units_used = s.messages, messages = s.messages, "
            "input_tokens = s.tokens_in, output_tokens = s.tokens_out, provider_cost_usd = s.cost, "
            "charge_usd = s.charge, credits_used = s.credits "
            "FROM (SELECT period_id, count(*) AS messages, sum(input_tokens) AS tokens_in, "
            "sum(output_tokens) AS tokens_out, sum(cost_usd) AS cost, sum(charge_usd) AS charge, "
            "sum(credits) AS credits FROM usage_usageevent WHERE account_id = %s GROUP BY period_id) AS s "
            "WHERE p.id = s.period_id",
            [account_id],
        )
        cursor.execute("ANALYZE")


# --- the baseline view ---------------------------------------------------------------------------------------------


def bare_page(request: Any) -> Any:
    """Signed in, one row read (the wallet's balance, through the membership), a one-line template rendered."""
    from django.http import HttpResponse
    from django.template import engines

    from billing.models import Wallet

    balance = (
        Wallet.objects.filter(account__memberships__user_id=request.user.pk).values_list("balance", flat=True).first()
    )
    template = engines["django"].from_string("<!doctype html><title>bare</title><p>{{ balance }} credits</p>")
    return HttpResponse(template.render({"balance": balance}, request))


def urls_with_baseline() -> str:
    """A URLconf module: the app's URLs plus /bench/bare."""
    from django.contrib.auth.decorators import login_required
    from django.urls import path

    from config.urls import urlpatterns

    module = types.ModuleType("bench_dashboard_urls")
    module.urlpatterns = [path("bench/bare", login_required(bare_page)), *urlpatterns]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module.__name__


# --- timing --------------------------------------------------------------------------------------------------------


def measure(*, requests: int) -> dict[str, Any]:
    import logging

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    pages = {"balance": "/", "baseline": "/bench/bare", "usage_history": "/usage/"}
    results: dict[str, Any] = {}
    logging.getLogger("tokenledger.request").setLevel(logging.WARNING)  # one log line per request: not timed here
    with override_settings(ROOT_URLCONF=urls_with_baseline()):
        client = Client()
        client.force_login(get_user_model().objects.get(username=OWNER))
        for url in pages.values():  # warm-up: caches, the catalog snapshot, PostgreSQL's buffers
            for _ in range(5):
                assert client.get(url).status_code == 200, url
        timings: dict[str, list[float]] = {name: [] for name in pages}
        for _ in range(requests):  # interleaved, so every page meets the same machine load
            for name, url in pages.items():
                started = time.perf_counter()
                response = client.get(url)
                timings[name].append(time.perf_counter() - started)
                assert response.status_code == 200, (url, response.status_code)
        for name, url in pages.items():
            with CaptureQueriesContext(connection) as queries:
                client.get(url)
            sql = [q["sql"] for q in queries.captured_queries]
            seconds = timings[name]
            results[name] = {
                "url": url,
                "requests": len(seconds),
                "p50_ms": round(harness.percentile(seconds, 50) * 1000, 2),
                "p95_ms": round(harness.percentile(seconds, 95) * 1000, 2),
                "mean_ms": round(statistics.fmean(seconds) * 1000, 2),
                "max_ms": round(max(seconds) * 1000, 2),
                "sql_queries": len(sql),
                "queries_on_usage_events": sum("usage_usageevent" in q for q in sql),
            }
        balance = client.get("/").content.decode()
        assert "Credit balance" in balance and 'class="bar"' in balance
    return results


def main() -> None:
    args = arguments()
    prepare(DATABASE)
    now = datetime.now(UTC)
    from django.db import transaction

    with transaction.atomic():
        account, periods = account_make(now, args.days)
    harness.log(f"COPY {args.events:,} events into usage_usageevent over {args.days} days")
    copy_seconds = events_copy(account=account, periods=periods, count=args.events, now=now, days=args.days)
    harness.log(f"copied in {copy_seconds:.1f} s; deriving the daily rollups and the period counters")
    rollups_derive(account.pk)
    from usage.models import DailyUsage, UsageEvent

    stored = UsageEvent.objects.filter(account=account).count()
    rollups = DailyUsage.objects.filter(account=account).count()
    harness.checkpoint(DATABASE)
    harness.log(f"{stored:,} events, {rollups:,} daily rollups; timing {args.requests} requests per page")
    results = measure(requests=args.requests)
    balance, baseline = results["balance"], results["baseline"]
    summary = {
        "events_in_account": stored,
        "daily_rollup_rows": rollups,
        "copy_seconds": round(copy_seconds, 1),
        "pages": results,
        "balance_p95_over_baseline_p95": round(balance["p95_ms"] / baseline["p95_ms"], 2),
        "target": harness.target(balance["p95_ms"], at_most=TARGET_P95_MS),
        "machine": harness.machine(),
        "load_average_1m": harness.load_average(),
    }
    rows = [
        (name, f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms, {r['sql_queries']} queries "
               f"({r['queries_on_usage_events']} on usage_usageevent)")
        for name, r in results.items()
    ]  # fmt: skip
    rows.append(("balance p95 / baseline p95", f"{summary['balance_p95_over_baseline_p95']}"))
    rows.append(("balance p95 target", summary["target"]))
    print(harness.table(rows, f"Balance page with {stored:,} events in the account ({args.requests} requests each)"))
    print(json.dumps(summary, indent=2, default=str))
    harness.django_disconnect()
    if not args.keep_db:
        harness.database_drop(DATABASE)


if __name__ == "__main__":
    main()
