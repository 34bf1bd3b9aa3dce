"""Ingest benchmark: usage events recorded over HTTP in batches, against a raw psycopg insert of the same rows.

    .venv/bin/python bench/ingest.py [--events 200000] [--accounts 100] [--batch 1000] [--clients 4]

PostgreSQL (127.0.0.1:5432, user postgres) and Redis (db 10) must be running. The script makes its own database,
runs gunicorn with 2 sync workers, POSTs every batch to /api/usage/events from `--clients` threads, checks the
books, then inserts the very rows the API stored into a table of the same shape (same columns, types, unique
constraint and indexes, no foreign keys) with psycopg's `executemany`, one transaction per batch, and reports
events/s for both and their ratio. Targets (issue 5): >= 25,000 events/s, ratio >= 0.25.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

TARGET_EVENTS_PER_SECOND = 25_000
TARGET_RATIO = 0.25
DATABASE = "tokenledger_bench_ingest"
# every seed model the `jive` plan may use, with the share of events on it
MODELS = [
    ("qwen-3-32b", 4),
    ("gpt-4o-mini", 3),
    ("claude-3-5-haiku", 2),
    ("meta-llama/llama-3.3-70b-instruct", 1),
]
OPERATIONS = ["chat_completion", "summarize", "rag_answer"]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events to record (default 200000)")
    parser.add_argument("--accounts", type=int, default=100, help="accounts the events are spread over (default 100)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request, at most 1000 (default 1000)")
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent HTTP clients (default 4: two per worker, so one waits)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    args = parser.parse_args()
    if not 1 <= args.batch <= 1000:
        parser.error("--batch must be between 1 and 1000")
    if args.events < args.batch or args.accounts < 1 or args.clients < 1:
        parser.error("need --events >= --batch, --accounts >= 1, --clients >= 1")
    return args


def accounts_create(count: int) -> list[str]:
    """`count` accounts on the `jive` credit plan with 10^9 credits each; their API keys."""
    from billing.services.accounts import account_create

    keys = []
    for index in range(count):
        _, raw_key = account_create(name=f"ingest bench {index}", plan_code="jive", credits=Decimal(10**9))
        keys.append(raw_key)
    return keys


def batches_build(*, events: int, batch: int, accounts: int, now: datetime) -> list[tuple[int, bytes, int]]:
    """(account index, JSON body, event count) per request: deterministic events on four models, some with cached
    input, a non-billable feature or metadata, occurred in the minute before `now`."""
    rng = random.Random(5)
    weighted = [model for model, weight in MODELS for _ in range(weight)]
    bodies = []
    sequence = itertools.count()
    for number in range((events + batch - 1) // batch):
        size = min(batch, events - number * batch)
        rows: list[dict[str, Any]] = []
        for _ in range(size):
            n = next(sequence)
            input_tokens = rng.randint(50, 4000)
            event: dict[str, Any] = {
                "request_id": f"ing-{n:08d}",
                "model": rng.choice(weighted),
                "input_tokens": input_tokens,
                "output_tokens": rng.randint(10, 1500),
                "operation_type": OPERATIONS[n % len(OPERATIONS)],
                "user": f"user-{rng.randint(1, 500)}",
                "occurred_at": (now - timedelta(milliseconds=rng.randint(0, 60_000))).isoformat(),
            }
            if n % 4 == 0:
                event["cached_input_tokens"] = input_tokens // 2
            if n % 10 == 0:
                event["features"] = ["rag_search"]
            if n % 5 == 0:
                event["metadata"] = {"source": "bench", "trace": n}
            rows.append(event)
        bodies.append((number % accounts, json.dumps({"events": rows}).encode(), size))
    return bodies


def api_ingest(
    *, server: harness.Server, keys: list[str], bodies: list[tuple[int, bytes, int]], clients: int
) -> dict[str, Any]:
    """POST every body from `clients` threads; events/s over the wall-clock time, per-request latency, CPU."""
    port = server.port
    latencies = harness.Latencies()
    queue = iter(range(len(bodies)))
    queue_lock = threading.Lock()
    recorded = [0] * clients

    def work(index: int) -> None:
        connections: dict[int, harness.ApiClient] = {}
        while True:
            with queue_lock:
                number = next(queue, None)
            if number is None:
                break
            account, body, size = bodies[number]
            client = connections.get(account) or connections.setdefault(account, harness.ApiClient(port, keys[account]))
            status, answer, seconds = client.post("/api/usage/events", body)
            if status != 200 or answer["recorded"] != size:
                raise SystemExit(f"batch {number}: HTTP {status}, {str(answer)[:500]}")
            latencies.add(seconds)
            recorded[index] += size
        for client in connections.values():
            client.close()

    meter = harness.CpuMeter(database=DATABASE, server_pid=server.process.pid)
    meter.start()
    elapsed = harness.run_clients(clients, work)
    cpu = meter.stop()
    events = sum(recorded)
    return {
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed, 1),
        "request_latency": latencies.summary_ms(),
        "cpu": cpu,
        "events_per_cpu_second": round(events / cpu["total_cpu_s"], 1) if cpu["total_cpu_s"] else None,
        "cpu_ms_per_1000_events": _per_thousand(cpu, events),
    }


def _per_thousand(cpu: dict[str, float], events: int) -> dict[str, float]:
    return {
        name.removesuffix("_cpu_s"): round(cpu[name] * 1000 * 1000 / events, 1)
        for name in ("app_cpu_s", "db_cpu_s", "client_cpu_s", "total_cpu_s")
    }


def warm_up(*, port: int, key: str, clients: int) -> None:
    """A few small batches on an account of its own, so each worker has loaded the catalog before the clock runs."""
    now = datetime.now(UTC)

    def work(index: int) -> None:
        client = harness.ApiClient(port, key)
        for round_ in range(3):
            events = [
                {"request_id": f"warm-{index}-{round_}-{i}", "model": "qwen-3-32b", "input_tokens": 10,
                 "output_tokens": 10, "occurred_at": now.isoformat()}
                for i in range(20)
            ]  # fmt: skip
            status, answer, _ = client.post("/api/usage/events", {"events": events})
            if status != 200:
                raise SystemExit(f"warm-up: HTTP {status}, {str(answer)[:300]}")
        client.close()

    harness.run_clients(clients, work)


def books_check(*, events: int) -> dict[str, Any]:
    """Each wallet equals its ledger, each wallet moved by its events' credits, the periods counted every event."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT (account_id, request_id)) FROM usage_usageevent WHERE request_id LIKE 'ing-%'"
        )
        stored, distinct = cursor.fetchone()
        cursor.execute(
            """
            SELECT count(*) FROM billing_wallet w
            WHERE w.balance <> (SELECT coalesce(sum(e.credits), 0) FROM billing_ledgerentry e WHERE e.wallet_id = w.id)
               OR w.balance <> 1000000000 - (SELECT coalesce(sum(u.credits), 0) FROM usage_usageevent u
                                             WHERE u.account_id = w.account_id)
            """
        )
        (wallets_off,) = cursor.fetchone()
        cursor.execute("SELECT coalesce(sum(messages), 0) FROM billing_billingperiod")
        (messages,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM usage_usageevent")
        (all_events,) = cursor.fetchone()
    ok = stored == events and distinct == events and wallets_off == 0 and messages == all_events
    return {"ok": ok, "events_stored": stored, "wallets_off_ledger_or_usage": wallets_off, "period_messages": messages}


def raw_baseline(*, database: str, batch: int) -> dict[str, Any]:
    """The rows the API stored, inserted again with psycopg executemany into a table of the same shape."""
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(harness.database_dsn(database)) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        # LIKE ... INCLUDING ALL copies columns, types, defaults, identity, the unique constraint and the indexes;
        # foreign keys are never copied by LIKE
        conn.execute("CREATE TABLE bench_raw (LIKE usage_usageevent INCLUDING ALL)")
        conn.commit()
        columns = [
            (name, kind)
            for name, kind in conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'usage_usageevent' AND column_name <> 'id' ORDER BY ordinal_position"
            ).fetchall()
        ]
        names = ", ".join(f'"{name}"' for name, _ in columns)
        json_at = [i for i, (_, kind) in enumerate(columns) if kind in ("jsonb", "json")]
        fetched = conn.execute(
            f"SELECT {names} FROM usage_usageevent WHERE request_id LIKE 'ing-%' ORDER BY id"
        ).fetchall()
        conn.commit()
        rows: list[list[Any]] = []
        for row in fetched:
            values = list(row)
            for i in json_at:
                values[i] = Jsonb(values[i])
            rows.append(values)
        del fetched
        statement = f"INSERT INTO bench_raw ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
    harness.checkpoint(database)
    with psycopg.connect(harness.database_dsn(database)) as conn:
        meter = harness.CpuMeter(database=database)
        meter.start()
        started = time.perf_counter()
        for offset in range(0, len(rows), batch):
            with conn.cursor() as cursor:
                cursor.executemany(statement, rows[offset : offset + batch])
            conn.commit()
        elapsed = time.perf_counter() - started
        cpu = meter.stop()
        (inserted,) = conn.execute("SELECT count(*) FROM bench_raw").fetchone()  # type: ignore[misc]
    if inserted != len(rows):
        raise SystemExit(f"raw baseline inserted {inserted} rows of {len(rows)}")
    return {
        "events": len(rows),
        "seconds": round(elapsed, 3),
        "events_per_second": round(len(rows) / elapsed, 1),
        "columns": len(columns),
        "cpu": cpu,
        "events_per_cpu_second": round(len(rows) / cpu["total_cpu_s"], 1) if cpu["total_cpu_s"] else None,
        "cpu_ms_per_1000_events": _per_thousand(cpu, len(rows)),
    }


def _cpu_line(phase: dict[str, Any]) -> str:
    per = phase["cpu_ms_per_1000_events"]
    return (
        f"app {per['app']:.0f} + db {per['db']:.0f} + client {per['client']:.0f} = {per['total']:.0f} "
        f"({phase['events_per_cpu_second']:,.0f} events per CPU-second)"
    )


def main() -> None:
    args = arguments()
    env = harness.prepare_database(DATABASE)
    harness.log(f"creating {args.accounts} accounts on plan jive with 10^9 credits each")
    keys = accounts_create(args.accounts)
    (warm_key,) = accounts_create(1)
    harness.django_disconnect()
    bodies = batches_build(events=args.events, batch=args.batch, accounts=args.accounts, now=datetime.now(UTC))
    harness.log(f"{len(bodies)} request bodies built ({sum(len(b) for _, b, _ in bodies) / 1e6:.1f} MB of JSON)")

    with harness.gunicorn(env=env, workers=args.workers) as server:
        warm_up(port=server.port, key=warm_key, clients=args.clients)
        harness.checkpoint(DATABASE)
        harness.log(f"recording {args.events} events in batches of {args.batch} from {args.clients} clients")
        api = api_ingest(server=server, keys=keys, bodies=bodies, clients=args.clients)
    harness.log(f"API: {api['events_per_second']:.0f} events/s; checking the books")
    books = books_check(events=args.events)
    harness.django_disconnect()
    harness.log("raw baseline: psycopg executemany of the same rows")
    raw = raw_baseline(database=DATABASE, batch=args.batch)
    ratio = api["events_per_second"] / raw["events_per_second"]
    cpu_ratio = (
        api["events_per_cpu_second"] / raw["events_per_cpu_second"]
        if api["events_per_cpu_second"] and raw["events_per_cpu_second"]
        else 0.0
    )

    summary = {
        "benchmark": "ingest",
        "events": args.events,
        "accounts": args.accounts,
        "batch": args.batch,
        "clients": args.clients,
        "workers": args.workers,
        "api": api,
        "raw_executemany": raw,
        "ratio": round(ratio, 3),
        "ratio_per_cpu_second": round(cpu_ratio, 3),
        "books": books,
        "targets": {
            "events_per_second": TARGET_EVENTS_PER_SECOND,
            "events_per_second_met": api["events_per_second"] >= TARGET_EVENTS_PER_SECOND,
            "ratio": TARGET_RATIO,
            "ratio_met": ratio >= TARGET_RATIO,
        },
        "machine": harness.machine(),
    }
    latency = api["request_latency"]
    print(
        harness.table(
            [
                ("events", f"{args.events} over {args.accounts} accounts, batches of {args.batch}"),
                ("clients / workers", f"{args.clients} / {args.workers} gunicorn sync workers"),
                ("API events/s", f"{api['events_per_second']:,.0f}  {harness.target(api['events_per_second'], at_least=TARGET_EVENTS_PER_SECOND)}"),
                ("API wall time", f"{api['seconds']:.1f} s"),
                ("batch latency", f"p50 {latency['p50_ms']:.0f} ms, p99 {latency['p99_ms']:.0f} ms"),
                ("API CPU ms / 1000 events", _cpu_line(api)),
                ("raw executemany events/s", f"{raw['events_per_second']:,.0f} ({raw['seconds']:.1f} s)"),
                ("raw CPU ms / 1000 events", _cpu_line(raw)),
                ("ratio API / raw", f"{ratio:.3f}  {harness.target(ratio, at_least=TARGET_RATIO)}"),
                ("ratio per CPU-second", f"{cpu_ratio:.3f}"),
                ("load average (1 min)", f"{api['cpu']['load_average_1m_before']:.1f} -> {raw['cpu']['load_average_1m_after']:.1f}"),
                ("books", "ok" if books["ok"] else f"WRONG {books}"),
            ],
            "bench/ingest",
        )
    )  # fmt: skip
    print(json.dumps(summary, default=str))
    if not args.keep_db:
        harness.database_drop(DATABASE)
    if not books["ok"]:
        raise SystemExit("the books do not balance")


if __name__ == "__main__":
    main()
