"""Reconciliation benchmark: a gateway's per-request CSV and an OpenAI cost export against recorded events.

    .venv/bin/python bench/reconcile.py [--events 1000000] [--bucket-rows 100000] [--accounts 100]

Makes its own database, then loads (untimed, with COPY) `--events` usage events over October 2026 on three models
and `--accounts` accounts, each mapped to a provider project. It writes two files from those events: a `requests`
CSV with one row per event, in time order (1 % of the costs 25 % higher, every 200th event left out of the file,
a request id we never saw after every 200th row, a malformed row every 10,000), and an OpenAI cost export of
about `--bucket-rows` hourly rows (day x project x token-type part, split over the hours; every 50th day x project
billed 50 % higher). Then, each in a child process so its time and peak memory are its own:

- a plain `csv.reader` pass over the requests file (the baseline),
- `manage.py reconcile --source requests FILE` (timed; then run again, which must change no event),
  and the same command on a header-only file (the Django start-up floor of time and memory),
- `manage.py reconcile --source openai-costs FILE` (timed),

checks every count against what was generated, and reports seconds, peak RSS and the ratio to the baseline.
Targets (issue 8): requests < 60 s with memory bounded (streamed); 100,000 bucket rows < 10 s.
`--events-fillfactor 85` loads the events into pages with 15 % free, so each event's one reconciliation update can
be a heap-only (HOT) update instead of a new tuple plus an entry in each of the table's six indexes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

DATABASE = "tokenledger_bench_reconcile"
TARGET_REQUEST_SECONDS = 60
TARGET_BUCKET_SECONDS = 10
OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 31
MILLION = Decimal(1_000_000)
PRECISE = Decimal("0.000000000001")
# model, share, (input, cached input, output) USD per 1M, as seeded
MODELS = [
    ("gpt-4o-mini", 4, (Decimal("0.15"), Decimal("0.075"), Decimal("0.60"))),
    ("claude-3-5-haiku", 3, (Decimal("0.80"), Decimal("0.08"), Decimal("4.00"))),
    ("qwen-3-32b", 3, (Decimal("0.10"), Decimal("0.10"), Decimal("0.10"))),
]
REQUEST_DRIFT_EVERY, OMIT_EVERY, GHOST_EVERY, MALFORMED_EVERY = 100, 200, 200, 10_000
BUCKET_DRIFT_EVERY = 50


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="recorded events (default 1000000)")
    parser.add_argument("--bucket-rows", type=int, default=100_000, help="cost export rows, about (default 100000)")
    parser.add_argument("--accounts", type=int, default=100, help="accounts, one provider project each (default 100)")
    parser.add_argument(
        "--events-fillfactor",
        type=int,
        help="set usage_usageevent's fillfactor before loading (e.g. 85, so the one update per event is HOT); "
        "default: the schema as migrated",
    )
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    parser.add_argument("--keep-files", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    if args.events < 10_000 or args.accounts < 1 or args.bucket_rows < 1:
        parser.error("need --events >= 10000, --accounts >= 1, --bucket-rows >= 1")
    if args.events_fillfactor is not None and not 10 <= args.events_fillfactor <= 100:
        parser.error("--events-fillfactor is 10..100")
    return args


def cost_of(model: int, uncached: int, cached: int, output: int) -> Decimal:
    price_in, price_cached, price_out = MODELS[model][2]
    total = (uncached * price_in + cached * price_cached + output * price_out) / MILLION
    return total.quantize(PRECISE, rounding=ROUND_HALF_UP)


class Generated:
    """What was generated, so every figure the runs report can be checked."""

    def __init__(self) -> None:
        self.request_rows = 0
        self.expected: dict[str, int] = defaultdict(int)
        self.gpt_parts: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)  # (day, account, part) -> USD
        self.bucket_rows = 0
        self.bucket_expected: dict[str, int] = defaultdict(int)


def accounts_create(count: int) -> list[tuple[int, int]]:
    """`count` accounts mapped to provider projects proj_<n>; (account id, period id) each."""
    from django.db import transaction

    from billing.models import Account
    from billing.services.accounts import account_create
    from billing.services.periods import period_current

    made = []
    for index in range(count):
        with transaction.atomic():
            account, _ = account_create(name=f"reconcile bench {index}", plan_code="jive", credits=Decimal(10**9))
            Account.objects.filter(pk=account.pk).update(provider_project_ids=[f"proj_{index}"])
            period = period_current(account=account, as_of=datetime.now(UTC))
        made.append((account.pk, period.pk))
    return made


def events_load_and_files(
    *, events: int, accounts: list[tuple[int, int]], requests_path: Path, generated: Generated
) -> None:
    """COPY the events into usage_usageevent and write the gateway's requests CSV beside them."""
    import psycopg

    from usage.models import UsageEvent

    rng = random.Random(8)
    weighted = [index for index, (_, share, _) in enumerate(MODELS) for _ in range(share)]
    meta = UsageEvent._meta
    values_of: dict[str, Any] = {
        "reasoning_tokens": 0, "images": 0, "features": "[]", "multiplier": Decimal(1), "operation_type": "chat",
        "user": "", "conversation_id": "", "metadata": "{}", "breakdown": "{}", "feature_version_ids": "{}",
        "plan_code": "jive", "over_limit": False, "user_agent": "", "reconciliation_status": "pending",
        "price_version_id": None, "credits_rate": Decimal(10000), "ip": None, "actual_cost_usd": None,
        "reconciled_at": None, "batch_id": uuid.uuid4(),
    }  # fmt: skip
    columns = [f.column for f in meta.concrete_fields if f.column != "id"]
    statement = "COPY {} ({}) FROM STDIN".format(meta.db_table, ", ".join(f'"{c}"' for c in columns))
    step = timedelta(days=DAYS) / events
    header = ["request_id", "timestamp", "model", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"]
    with (
        psycopg.connect(harness.database_dsn(DATABASE)) as conn,
        conn.cursor() as cursor,
        cursor.copy(statement) as copy,
        requests_path.open("w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        for n in range(events):
            account_id, period_id = accounts[n % len(accounts)]
            model = rng.choice(weighted)
            input_tokens = rng.randint(500, 20_000)
            cached = input_tokens // 2 if n % 4 == 0 else 0
            output = rng.randint(100, 4000)
            occurred = OCT_1 + step * n
            cost = cost_of(model, input_tokens - cached, cached, output)
            request_id = f"bench-{n:08d}"
            values_of.update(
                account_id=account_id, period_id=period_id, request_id=request_id, model_id=MODELS[model][0],
                model_requested=MODELS[model][0], input_tokens=input_tokens, output_tokens=output,
                cached_input_tokens=cached, occurred_at=occurred, received_at=occurred, cost_usd=cost,
                charge_usd=cost, credits=cost * 10000, units=cost * 10000,
            )  # fmt: skip
            copy.write_row([values_of[f.attname] for f in meta.concrete_fields if f.column != "id"])
            if model == 0:
                day = (occurred - OCT_1).days
                generated.gpt_parts[(day, account_id, "input")] += (input_tokens - cached) * MODELS[0][2][0] / MILLION
                generated.gpt_parts[(day, account_id, "cached input")] += cached * MODELS[0][2][1] / MILLION
                generated.gpt_parts[(day, account_id, "output")] += output * MODELS[0][2][2] / MILLION
            if n % OMIT_EVERY == OMIT_EVERY - 1 and n < events - 1:  # the last one would be outside the file's span
                generated.expected["not_in_export"] += 1
                continue
            stamp = (occurred + timedelta(seconds=rng.randint(0, 2))).strftime("%Y-%m-%dT%H:%M:%SZ")
            billed = cost
            if n % REQUEST_DRIFT_EVERY == 7:
                billed = cost * Decimal("1.25")
                generated.expected["discrepancy"] += 1
            else:
                generated.expected["matched"] += 1
            writer.writerow([request_id, stamp, MODELS[model][0], input_tokens, output, cached, f"{billed:f}"])
            generated.request_rows += 1
            if generated.request_rows % GHOST_EVERY == 0:
                writer.writerow([f"ghost-{n:08d}", stamp, MODELS[model][0], 1000, 100, 0, "0.0001"])
                generated.request_rows += 1
                generated.expected["not_found"] += 1
            if generated.request_rows % MALFORMED_EVERY == 0:
                writer.writerow([f"bad-{n:08d}", stamp, MODELS[model][0], "lots", 100, 0, "0.0001"])
                generated.request_rows += 1
                generated.expected["errors"] += 1
            if n and n % 200_000 == 0:
                harness.log(f"  {n} events loaded")
        generated.expected["rows"] = generated.request_rows
    harness.log(f"{events} events loaded; analyzing")
    with psycopg.connect(harness.database_dsn(DATABASE), autocommit=True) as conn:
        conn.execute(f"ANALYZE {meta.db_table}")


def bucket_file(*, path: Path, accounts: list[tuple[int, int]], rows: int, generated: Generated) -> None:
    """An OpenAI cost export: each day x project x part of gpt-4o-mini split over `hours` hourly rows."""
    projects = {account_id: f"proj_{index}" for index, (account_id, _) in enumerate(accounts)}
    lines = sorted({(day, account_id) for day, account_id, _ in generated.gpt_parts})
    hours = max(1, min(24, round(rows / max(1, len(lines) * 3))))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["start_time", "end_time", "start_time_iso", "end_time_iso", "amount_value",
                         "amount_currency", "line_item", "project_id", "organization_id", "organization_name"])  # fmt: skip
        for number, (day, account_id) in enumerate(lines):
            factor = Decimal("1.5") if number % BUCKET_DRIFT_EVERY == 0 else Decimal(1)
            ours = sum(
                (generated.gpt_parts[(day, account_id, p)] for p in ("input", "cached input", "output")), Decimal(0)
            )
            billed = ours * factor
            # the matching rule: within max(5 % of the provider's amount, $0.05)
            within = abs(billed - ours) <= max(billed * Decimal("0.05"), Decimal("0.05"))
            generated.bucket_expected["matched" if within else "discrepancy"] += 1
            for part in ("input", "cached input", "output"):
                amount = generated.gpt_parts[(day, account_id, part)] * factor
                share = (amount / hours).quantize(Decimal("0.0000000001"))
                for hour in range(hours):
                    start = OCT_1 + timedelta(days=day, hours=hour)
                    # the day's last row runs to midnight, so the file covers whole days
                    end = start + timedelta(hours=1) if hour < hours - 1 else OCT_1 + timedelta(days=day + 1)
                    value = share if hour < hours - 1 else amount - share * (hours - 1)
                    writer.writerow([int(start.timestamp()), int(end.timestamp()), start.isoformat(), end.isoformat(),
                                     f"{value:f}", "usd", f"gpt-4o-mini-2024-07-18, {part}", projects[account_id],
                                     "org-bench", "Bench Org"])  # fmt: skip
                    generated.bucket_rows += 1
    generated.bucket_expected["rows"] = generated.bucket_rows


def child(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a child process; its wall seconds, CPU seconds and peak RSS (its own, from wait4), and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=harness.REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        sys.stderr.write(stdout[-2000:] + stderr[-2000:])
        raise SystemExit(f"{' '.join(command[:4])} failed with exit code {process.returncode}")
    return {
        "seconds": round(seconds, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stdout": stdout,
    }


BASELINE = """
import csv, sys
rows = 0
with open(sys.argv[1], newline="", encoding="utf-8-sig") as handle:
    for record in csv.reader(handle):
        rows += 1
print(rows)
"""


def reconcile(source: str, path: Path, env: dict[str, str]) -> dict[str, Any]:
    meter = harness.CpuMeter(database=DATABASE)
    meter.start()
    result = child([harness.PYTHON, "manage.py", "reconcile", "--source", source, str(path)], env)
    cpu = meter.stop()
    result["db_cpu_s"] = cpu["db_cpu_s"]
    result["load_average_1m"] = [cpu["load_average_1m_before"], cpu["load_average_1m_after"]]
    result["summary"] = json.loads(result.pop("stdout").strip().splitlines()[-1])
    return result


def check(summary: dict[str, Any], expected: dict[str, int]) -> dict[str, Any]:
    wrong = {k: (summary.get(k, 0), v) for k, v in expected.items() if summary.get(k, 0) != v}
    for key in ("matched", "discrepancy", "not_found", "not_in_export", "errors"):
        if key not in expected and summary.get(key):
            wrong[key] = (summary[key], 0)
    return {"ok": not wrong, "wrong (got, expected)": wrong}


def events_reconciled() -> dict[str, int]:
    import psycopg

    with psycopg.connect(harness.database_dsn(DATABASE)) as conn:
        rows = conn.execute(
            "SELECT reconciliation_status, count(*) FROM usage_usageevent GROUP BY reconciliation_status"
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def main() -> None:
    args = arguments()
    env = harness.prepare_database(DATABASE)
    generated = Generated()
    workdir = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    requests_path, bucket_path = workdir / "requests.csv", workdir / "openai-costs.csv"
    harness.log(f"creating {args.accounts} accounts mapped to provider projects")
    accounts = accounts_create(args.accounts)
    harness.django_disconnect()
    if args.events_fillfactor is not None:
        import psycopg

        with psycopg.connect(harness.database_dsn(DATABASE), autocommit=True) as conn:
            conn.execute(f"ALTER TABLE usage_usageevent SET (fillfactor = {int(args.events_fillfactor)})")
        harness.log(f"usage_usageevent fillfactor set to {args.events_fillfactor}")
    harness.log(f"loading {args.events} events with COPY and writing {requests_path}")
    started = time.perf_counter()
    events_load_and_files(events=args.events, accounts=accounts, requests_path=requests_path, generated=generated)
    bucket_file(path=bucket_path, accounts=accounts, rows=args.bucket_rows, generated=generated)
    harness.log(
        f"loaded in {time.perf_counter() - started:.0f} s: {generated.request_rows} request rows "
        f"({requests_path.stat().st_size / 1e6:.1f} MB), {generated.bucket_rows} cost rows "
        f"({bucket_path.stat().st_size / 1e6:.1f} MB)"
    )
    harness.checkpoint(DATABASE)

    harness.log("baseline: a plain csv.reader pass over the requests file")
    baseline = child([harness.PYTHON, "-c", BASELINE, str(requests_path)], env)
    baseline_rows = int(baseline.pop("stdout").strip())
    tiny = workdir / "one-row.csv"
    tiny.write_text("request_id,timestamp,model,input_tokens,output_tokens,cached_input_tokens,cost_usd\r\n")
    django_floor = reconcile("requests", tiny, env)
    harness.log("reconciling the requests file (timed)")
    requests_run = reconcile("requests", requests_path, env)
    statuses = events_reconciled()
    harness.checkpoint(DATABASE)
    harness.log("again: the same file must change no event")
    rerun = reconcile("requests", requests_path, env)
    statuses_after = events_reconciled()
    harness.log("reconciling the cost export (timed)")
    bucket_run = reconcile("openai-costs", bucket_path, env)

    request_check = check(requests_run["summary"], dict(generated.expected))
    rerun_check = check(rerun["summary"], dict(generated.expected))
    bucket_check = check(bucket_run["summary"], dict(generated.bucket_expected))
    events_ok = (
        statuses.get("matched", 0) == generated.expected["matched"]
        and statuses.get("discrepancy", 0) == generated.expected["discrepancy"]
        and statuses == statuses_after
    )
    ratio = requests_run["seconds"] / baseline["seconds"]
    result = {
        "benchmark": "reconcile",
        "events": args.events,
        "accounts": args.accounts,
        "events_fillfactor": args.events_fillfactor,
        "requests_file": {"rows": generated.request_rows, "mb": round(requests_path.stat().st_size / 1e6, 1)},
        "cost_file": {"rows": generated.bucket_rows, "mb": round(bucket_path.stat().st_size / 1e6, 1)},
        "csv_baseline": {**baseline, "rows": baseline_rows},
        "django_floor": {k: django_floor[k] for k in ("seconds", "cpu_s", "peak_rss_mb")},
        "requests_run": requests_run,
        "requests_rerun": rerun,
        "ratio_to_csv_parse": round(ratio, 1),
        "bucket_run": bucket_run,
        "checks": {
            "requests": request_check,
            "rerun": rerun_check,
            "buckets": bucket_check,
            "events": events_ok,
            "event_statuses": statuses,
        },
        "targets": {
            "requests_seconds": TARGET_REQUEST_SECONDS,
            "requests_met": requests_run["seconds"] < TARGET_REQUEST_SECONDS * args.events / 1_000_000,
            "bucket_seconds": TARGET_BUCKET_SECONDS,
            "bucket_met": bucket_run["seconds"] < TARGET_BUCKET_SECONDS * max(generated.bucket_rows, 1) / 100_000,
        },
        "machine": harness.machine(),
    }
    summary = requests_run["summary"]
    print(
        harness.table(
            [
                ("events / request rows", f"{args.events:,} / {generated.request_rows:,} ({result['requests_file']['mb']} MB)"),
                ("usage_usageevent fillfactor", str(args.events_fillfactor or "as migrated (85)")),
                ("csv.reader baseline", f"{baseline['seconds']:.1f} s, peak {baseline['peak_rss_mb']:.0f} MB"),
                ("requests reconcile", f"{requests_run['seconds']:.1f} s  {harness.target(requests_run['seconds'], at_most=TARGET_REQUEST_SECONDS)}"),
                ("  CPU app / db", f"{requests_run['cpu_s']:.1f} s / {requests_run['db_cpu_s']:.1f} s (load average {requests_run['load_average_1m'][0]:.1f} -> {requests_run['load_average_1m'][1]:.1f})"),
                ("  peak memory", f"{requests_run['peak_rss_mb']:.0f} MB (Django floor {django_floor['peak_rss_mb']:.0f} MB, {django_floor['seconds']:.1f} s)"),
                ("  ratio to csv parse", f"{ratio:.1f}x"),
                ("  lines", f"{summary['matched']:,} matched, {summary['discrepancy']:,} discrepancy, {summary['not_found']:,} not found, {summary['not_in_export']:,} not in export, {summary['errors']:,} errors"),
                ("requests re-run", f"{rerun['seconds']:.1f} s (CPU app {rerun['cpu_s']:.1f} s / db {rerun['db_cpu_s']:.1f} s), events unchanged: {statuses == statuses_after}"),
                ("cost export rows", f"{generated.bucket_rows:,} ({result['cost_file']['mb']} MB)"),
                ("bucket reconcile", f"{bucket_run['seconds']:.1f} s  {harness.target(bucket_run['seconds'], at_most=TARGET_BUCKET_SECONDS)}, peak {bucket_run['peak_rss_mb']:.0f} MB"),
                ("checks", "ok" if request_check["ok"] and rerun_check["ok"] and bucket_check["ok"] and events_ok else f"WRONG {result['checks']}"),
            ],
            "bench/reconcile",
        )
    )  # fmt: skip
    print(json.dumps(result, default=str))
    if not args.keep_files:
        for path in (requests_path, bucket_path, tiny):
            path.unlink(missing_ok=True)
        workdir.rmdir()
    if not args.keep_db:
        harness.database_drop(DATABASE)
    if not (request_check["ok"] and rerun_check["ok"] and bucket_check["ok"] and events_ok):
        raise SystemExit("the reconciliation did not find what was generated: see the checks above")


if __name__ == "__main__":
    main()
