"""Authorize benchmark: authorize + record pairs over HTTP, against a bare DRF endpoint that reads one row.

    .venv/bin/python bench/authorize.py [--clients 8] [--pairs 1000] [--pings 2000] [--hot-pairs 400]

PostgreSQL (127.0.0.1:5432, user postgres) and Redis (db 10) must be running. The script makes its own database,
a `bench` credit plan without a rate limit (so the plan throttle never answers 429) that may use qwen-3-32b, one
account per client with ample credits and one "hot" account funded for exactly `--hot-pairs` calls, then runs
gunicorn (2 sync workers, bench.bench_settings: the app's URLs plus /bench/ping) and measures, in this order:

1. ping: `--pings` GET /bench/ping (API-key authentication, then one row read: the wallet balance);
2. pairs: `--pairs` POST /api/usage/authorize then POST /api/usage/events for the same request id, each client
   on its own account;
3. hot account: every client on the one account until each has made its share of 1.25 x `--hot-pairs` attempts;
   each allowed call is recorded at exactly its worst case (so the funding covers exactly `--hot-pairs` of them)
   and every tenth record is sent twice. Afterwards the books are checked: no charge lost or doubled.

Targets (issue 5): pair p99 <= 10 ms, pairs/s >= 0.5 x ping/s.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

DATABASE = "tokenledger_bench_authorize"
SETTINGS = "bench.bench_settings"
PLAN = "bench"
MODEL = "qwen-3-32b"
INPUT_TOKENS = 1200
MAX_OUTPUT_TOKENS = 800
OUTPUT_TOKENS = 500  # what a normal call really used (the hot phase uses the worst case)
AMPLE_CREDITS = Decimal(10**9)
TARGET_P99_MS = 10.0
TARGET_RATIO = 0.5


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--pairs", type=int, default=1000, help="authorize + record pairs in all (default 1000)")
    parser.add_argument("--pings", type=int, default=2000, help="baseline requests in all (default 2000)")
    parser.add_argument("--hot-pairs", type=int, default=400, help="calls the hot account is funded for (default 400)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    args = parser.parse_args()
    if min(args.clients, args.pairs, args.pings, args.hot_pairs, args.workers) < 1:
        parser.error("every count must be >= 1")
    return args


@dataclass
class Setup:
    keys: list[str]
    hot_key: str
    hot_account_id: int
    account_ids: list[int]
    credits_per_call: Decimal
    hot_funding: Decimal


def catalog_prepare() -> None:
    """The `bench` plan: credits, no fee, no included credits, markup 1, and no requests-per-hour limit."""
    from pricing.models import AIModel
    from pricing.services import model_update, plan_create, plan_terms_set

    plan = plan_create(code=PLAN, name="Benchmark", family="credits", is_public=False)
    plan_terms_set(
        plan=plan, unit="credits", fee="0", overage_rate="0", markup="1", included_units=None,
        requests_per_hour=None, effective_from=datetime(2024, 1, 1, tzinfo=UTC), reason="benchmark plan",
    )  # fmt: skip
    model = AIModel.objects.get(model_id=MODEL)
    model_update(model=model, allowed_tiers=[*model.allowed_tiers, PLAN])


def credits_per_call(*, output_tokens: int) -> Decimal:
    """What one call of the benchmark's shape costs on the bench plan, by the app's own rating."""
    from pricing.models import PlanTerms
    from pricing.rating import UsageLine, rate_usage
    from pricing.selectors import catalog_snapshot, plan_terms_version

    terms = plan_terms_version(PlanTerms.objects.select_related("plan").get(plan__code=PLAN))
    line = UsageLine(model=MODEL, occurred_at=datetime.now(UTC), input_tokens=INPUT_TOKENS, output_tokens=output_tokens)
    return rate_usage(line, catalog_snapshot(), tier=PLAN, terms=terms).credits


def accounts_prepare(*, clients: int, hot_pairs: int) -> Setup:
    from billing.services.accounts import account_create

    keys, ids = [], []
    for index in range(clients):
        account, key = account_create(name=f"authorize bench {index}", plan_code=PLAN, credits=AMPLE_CREDITS)
        keys.append(key)
        ids.append(account.pk)
    per_call = credits_per_call(output_tokens=MAX_OUTPUT_TOKENS)
    funding = per_call * hot_pairs
    hot, hot_key = account_create(name="authorize bench hot account", plan_code=PLAN, credits=funding)
    return Setup(
        keys=keys, hot_key=hot_key, hot_account_id=hot.pk, account_ids=ids, credits_per_call=per_call,
        hot_funding=funding,
    )  # fmt: skip


def _authorize_body(request_id: str) -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "model": MODEL,
            "input_tokens": INPUT_TOKENS,
            "max_output_tokens": MAX_OUTPUT_TOKENS,
            "operation_type": "bench_call",
        }
    ).encode()


def _record_body(request_id: str, output_tokens: int) -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "model": MODEL,
            "input_tokens": INPUT_TOKENS,
            "output_tokens": output_tokens,
            "operation_type": "bench_call",
        }
    ).encode()


def _shares(total: int, clients: int) -> list[int]:
    return [total // clients + (1 if i < total % clients else 0) for i in range(clients)]


def _phase_figures(count: int, elapsed: float, cpu: dict[str, float], unit: str) -> dict[str, Any]:
    return {
        unit: count,
        "seconds": round(elapsed, 3),
        f"{unit}_per_second": round(count / elapsed, 1) if elapsed else 0.0,
        "cpu": cpu,
        f"cpu_ms_per_{unit.rstrip('s')}": {
            name.removesuffix("_cpu_s"): round(cpu[name] * 1000 / count, 2) if count else 0.0
            for name in ("app_cpu_s", "db_cpu_s", "client_cpu_s", "total_cpu_s")
        },
    }


def ping_phase(*, server: harness.Server, keys: list[str], total: int) -> dict[str, Any]:
    clients = len(keys)
    latency = harness.Latencies()

    def work(index: int) -> None:
        client = harness.ApiClient(server.port, keys[index])
        seconds = []
        for _ in range(_shares(total, clients)[index]):
            status, answer, took = client.get("/bench/ping")
            if status != 200:
                raise SystemExit(f"ping: HTTP {status} {answer}")
            seconds.append(took)
        latency.extend(seconds)
        client.close()

    meter = harness.CpuMeter(database=DATABASE, server_pid=server.process.pid)
    meter.start()
    elapsed = harness.run_clients(clients, work)
    figures = _phase_figures(total, elapsed, meter.stop(), "requests")
    figures["latency"] = latency.summary_ms()
    return figures


def pairs_phase(*, server: harness.Server, keys: list[str], total: int, prefix: str) -> dict[str, Any]:
    """Each client on its own account: authorize, then record what the call used."""
    clients = len(keys)
    pairs, authorize, record = harness.Latencies(), harness.Latencies(), harness.Latencies()

    def work(index: int) -> None:
        client = harness.ApiClient(server.port, keys[index])
        for number in range(_shares(total, clients)[index]):
            request_id = f"{prefix}-{index}-{number}"
            status, answer, took_a = client.post("/api/usage/authorize", _authorize_body(request_id))
            if status != 200 or not answer.get("allowed"):
                raise SystemExit(f"authorize {request_id}: HTTP {status} {answer}")
            status, answer, took_r = client.post("/api/usage/events", _record_body(request_id, OUTPUT_TOKENS))
            if status != 201 or answer["results"][0]["status"] != "recorded":
                raise SystemExit(f"record {request_id}: HTTP {status} {answer}")
            authorize.add(took_a)
            record.add(took_r)
            pairs.add(took_a + took_r)
        client.close()

    meter = harness.CpuMeter(database=DATABASE, server_pid=server.process.pid)
    meter.start()
    elapsed = harness.run_clients(clients, work)
    figures = _phase_figures(total, elapsed, meter.stop(), "pairs")
    figures["pair_latency"] = pairs.summary_ms()
    figures["authorize_latency"] = authorize.summary_ms()
    figures["record_latency"] = record.summary_ms()
    return figures


@dataclass
class HotTally:
    allowed: set[str] = field(default_factory=set)
    denied: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    replay_answers: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def hot_phase(*, server: harness.Server, setup: Setup, clients: int, hot_pairs: int) -> dict[str, Any]:
    """Every client on one account funded for exactly `hot_pairs` calls at their worst case."""
    tally = HotTally()
    pairs, denied_latency = harness.Latencies(), harness.Latencies()
    attempts = math.ceil(hot_pairs * 1.25)

    def work(index: int) -> None:
        client = harness.ApiClient(server.port, setup.hot_key)
        allowed_here = 0
        for number in range(_shares(attempts, clients)[index]):
            request_id = f"hot-{index}-{number}"
            status, answer, took_a = client.post("/api/usage/authorize", _authorize_body(request_id))
            if status != 200:
                raise SystemExit(f"hot authorize {request_id}: HTTP {status} {answer}")
            if not answer["allowed"]:
                denied_latency.add(took_a)
                with tally.lock:
                    tally.denied[answer["reason"]] = tally.denied.get(answer["reason"], 0) + 1
                continue
            status, answer, took_r = client.post("/api/usage/events", _record_body(request_id, MAX_OUTPUT_TOKENS))
            if status != 201 or answer["results"][0]["status"] != "recorded":
                raise SystemExit(f"hot record {request_id}: HTTP {status} {answer}")
            pairs.add(took_a + took_r)
            allowed_here += 1
            with tally.lock:
                tally.allowed.add(request_id)
            if allowed_here % 10 == 0:  # a client retrying a record it already sent
                status, answer, _ = client.post("/api/usage/events", _record_body(request_id, MAX_OUTPUT_TOKENS))
                outcome = f"{status} {answer['results'][0]['status']}"
                with tally.lock:
                    tally.replays += 1
                    tally.replay_answers[outcome] = tally.replay_answers.get(outcome, 0) + 1
        client.close()

    meter = harness.CpuMeter(database=DATABASE, server_pid=server.process.pid)
    meter.start()
    elapsed = harness.run_clients(clients, work)
    figures = _phase_figures(len(tally.allowed), elapsed, meter.stop(), "pairs")
    figures.update(
        {
            "attempts": attempts,
            "allowed": len(tally.allowed),
            "denied": tally.denied,
            "replays": tally.replays,
            "replay_answers": tally.replay_answers,
            "pair_latency": pairs.summary_ms(),
            "denied_latency": denied_latency.summary_ms(),
        }
    )
    figures["books"] = hot_books(setup=setup, tally=tally, hot_pairs=hot_pairs)
    return figures


def hot_books(*, setup: Setup, tally: HotTally, hot_pairs: int) -> dict[str, Any]:
    """After the hot phase: every allowed call recorded once, the wallet moved by exactly the recorded charges,
    nothing left held, the ledger equal to the balance, and never more calls than the funding covers."""
    from django.db.models import Count, Sum

    from billing.models import LedgerEntry, Wallet
    from usage.models import Reservation, UsageEvent

    wallet = Wallet.objects.get(account_id=setup.hot_account_id)
    events = UsageEvent.objects.filter(account_id=setup.hot_account_id)
    recorded_ids = set(events.values_list("request_id", flat=True))
    charged = events.aggregate(total=Sum("credits"))["total"] or Decimal(0)
    ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("credits"))["total"] or Decimal(0)
    reservations = dict(
        Reservation.objects.filter(account_id=setup.hot_account_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    checks = {
        "balance_is_funding_minus_recorded_charges": wallet.balance == setup.hot_funding - charged,
        "nothing_held": wallet.held == 0,
        "ledger_sum_is_balance": ledger == wallet.balance,
        "every_allowed_call_recorded_once": recorded_ids == tally.allowed and events.count() == len(tally.allowed),
        "each_charge_is_one_call": charged == setup.credits_per_call * len(tally.allowed),
        "never_more_calls_than_funded": len(tally.allowed) <= hot_pairs and wallet.balance >= 0,
        "replays_answered_duplicate": set(tally.replay_answers) <= {"200 duplicate"},
        "reservations_all_settled": reservations.get("active", 0) == 0
        and reservations.get("settled", 0) == len(tally.allowed),
        "denials_only_for_credits": set(tally.denied) <= {"insufficient_credits"},
    }
    return {
        "ok": all(checks.values()),
        "checks": checks,
        "funding": str(setup.hot_funding),
        "credits_per_call": str(setup.credits_per_call),
        "recorded_charges": str(charged),
        "balance": str(wallet.balance),
        "held": str(wallet.held),
        "ledger_sum": str(ledger),
        "events": len(recorded_ids),
        "funding_used_up": wallet.balance == 0,
        "reservations": reservations,
    }


def accounts_books(*, account_ids: list[int]) -> dict[str, Any]:
    """The per-client accounts: wallet == ledger == opening credits - recorded charges, nothing left held."""
    from django.db.models import Sum

    from billing.models import LedgerEntry, Wallet
    from usage.models import UsageEvent

    wrong = []
    for account_id in account_ids:
        wallet = Wallet.objects.get(account_id=account_id)
        ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("credits"))["total"]
        charged = UsageEvent.objects.filter(account_id=account_id).aggregate(total=Sum("credits"))["total"]
        if wallet.held != 0 or ledger != wallet.balance or wallet.balance != AMPLE_CREDITS - (charged or 0):
            wrong.append(account_id)
    return {"ok": not wrong, "accounts_wrong": wrong}


def warm_up(*, server: harness.Server, keys: list[str]) -> None:
    """A few calls of each kind from every client, so each worker has loaded its code and the catalog."""

    def work(index: int) -> None:
        client = harness.ApiClient(server.port, keys[index])
        for _ in range(10):
            client.get("/bench/ping")
        for number in range(3):
            request_id = f"warm-{index}-{number}"
            client.post("/api/usage/authorize", _authorize_body(request_id))
            client.post("/api/usage/events", _record_body(request_id, OUTPUT_TOKENS))
        client.close()

    harness.run_clients(len(keys), work)


def main() -> None:
    args = arguments()
    env = harness.prepare_database(DATABASE)
    catalog_prepare()
    setup = accounts_prepare(clients=args.clients, hot_pairs=args.hot_pairs)
    harness.log(
        f"plan {PLAN} (no rate limit), {args.clients} accounts with 10^9 credits, hot account funded with "
        f"{setup.hot_funding} credits = {args.hot_pairs} calls x {setup.credits_per_call}"
    )
    harness.django_disconnect()
    with harness.gunicorn(env=env, workers=args.workers, settings_module=SETTINGS) as server:
        warm_up(server=server, keys=setup.keys)
        harness.checkpoint(DATABASE)
        harness.log(f"ping: {args.pings} GET /bench/ping from {args.clients} clients")
        ping = ping_phase(server=server, keys=setup.keys, total=args.pings)
        harness.log(f"pairs: {args.pairs} authorize + record from {args.clients} clients, one account each")
        pairs = pairs_phase(server=server, keys=setup.keys, total=args.pairs, prefix="pair")
        harness.log(f"hot account: {args.clients} clients on one account funded for {args.hot_pairs} calls")
        hot = hot_phase(server=server, setup=setup, clients=args.clients, hot_pairs=args.hot_pairs)
    books = accounts_books(account_ids=setup.account_ids)
    harness.django_disconnect()

    ratio = pairs["pairs_per_second"] / ping["requests_per_second"]
    pair_cpu = pairs["cpu_ms_per_pair"]["total"]
    ping_cpu = ping["cpu_ms_per_request"]["total"]
    cpu_ratio = ping_cpu / pair_cpu if pair_cpu else 0.0
    p99 = pairs["pair_latency"]["p99_ms"]
    summary = {
        "benchmark": "authorize",
        "clients": args.clients,
        "workers": args.workers,
        "ping": ping,
        "pairs": pairs,
        "ratio": round(ratio, 3),
        "ratio_per_cpu_second": round(cpu_ratio, 3),
        "hot_account": hot,
        "accounts_books": books,
        "targets": {
            "pair_p99_ms": TARGET_P99_MS,
            "pair_p99_met": p99 <= TARGET_P99_MS,
            "ratio": TARGET_RATIO,
            "ratio_met": ratio >= TARGET_RATIO,
        },
        "machine": harness.machine(),
    }
    pl, al, rl, hl = pairs["pair_latency"], pairs["authorize_latency"], pairs["record_latency"], hot["pair_latency"]
    hot_books_line = "ok" if hot["books"]["ok"] else f"WRONG {hot['books']['checks']}"
    print(
        harness.table(
            [
                ("clients / workers", f"{args.clients} / {args.workers} gunicorn sync workers"),
                ("ping requests/s", f"{ping['requests_per_second']:,.0f}  (p50 {ping['latency']['p50_ms']:.1f} ms, p99 {ping['latency']['p99_ms']:.1f} ms)"),
                ("ping CPU ms / request", _cpu_line(ping["cpu_ms_per_request"])),
                ("pairs/s", f"{pairs['pairs_per_second']:,.1f}"),
                ("pair latency", f"p50 {pl['p50_ms']:.1f} ms, p99 {pl['p99_ms']:.1f} ms  {harness.target(p99, at_most=TARGET_P99_MS)}"),
                ("authorize latency", f"p50 {al['p50_ms']:.1f} ms, p99 {al['p99_ms']:.1f} ms"),
                ("record latency", f"p50 {rl['p50_ms']:.1f} ms, p99 {rl['p99_ms']:.1f} ms"),
                ("pair CPU ms", _cpu_line(pairs["cpu_ms_per_pair"])),
                ("ratio pairs/s / ping/s", f"{ratio:.3f}  {harness.target(ratio, at_least=TARGET_RATIO)}"),
                ("ratio per CPU-second", f"{cpu_ratio:.3f}"),
                ("hot: allowed / attempts", f"{hot['allowed']} / {hot['attempts']} (funded for {args.hot_pairs}); denied {hot['denied']}"),
                ("hot: pairs/s, latency", f"{hot['pairs_per_second']:,.1f}; p50 {hl['p50_ms']:.1f} ms, p99 {hl['p99_ms']:.1f} ms"),
                ("hot: books", f"{hot_books_line}; balance {hot['books']['balance']}, held {hot['books']['held']}, replays {hot['replay_answers']}"),
                ("per-client accounts books", "ok" if books["ok"] else f"WRONG {books}"),
                ("load average (1 min)", f"{ping['cpu']['load_average_1m_before']:.1f} -> {hot['cpu']['load_average_1m_after']:.1f}"),
            ],
            "bench/authorize",
        )
    )  # fmt: skip
    print(json.dumps(summary, default=str))
    if not args.keep_db:
        harness.database_drop(DATABASE)
    if not (hot["books"]["ok"] and books["ok"]):
        raise SystemExit("the books do not balance")


def _cpu_line(per: dict[str, float]) -> str:
    return f"app {per['app']:.2f} + db {per['db']:.2f} + client {per['client']:.2f} = {per['total']:.2f}"


if __name__ == "__main__":
    main()
