"""Gate benchmark (issue 19): the account API measured from outside with `wrk`, against the framework's floor.

    .venv/bin/python bench/gate.py [--seconds 10] [--connections 8] [--hot-pairs 400]

Needs PostgreSQL (127.0.0.1:5432, user postgres), Redis (db 10, flushed) and Debian's `wrk` (`apt-get install
wrk`). The script makes its own database, the authorize benchmark's `bench` plan (no rate limit) and one account per
connection with ample credits (the requests take them in turn, each wrk thread its own), runs gunicorn (2 sync workers, bench.bench_settings) and measures, each endpoint for
`--seconds` after a short warm-up:

1. with `--connections` connections: the floor (`GET /bench/floor`, a bare DRF view reading one row with no
   authentication), `GET /api/billing/balance`, `POST /api/usage/authorize` (a new request id each time) and
   `POST /api/usage/events` (one new event each time); requests/s and p50/p99 from wrk's latency distribution;
2. the same with one connection (no queueing): latency only.

   The endpoints take turns: `--rounds` rounds (default 5), each giving every endpoint `--seconds / --rounds` of
   load, in an order that rotates from round to round. A machine whose speed drifts (a shared or throttled VM moved
   the floor by a third within minutes) then moves the floor and the endpoints alike, and the ratios hold. Each
   endpoint's figures are its slices' together: requests over the slices' time, percentiles from the slices'
   latency distributions merged (each slice's percentiles 1 to 99, and ten more within its slowest 1%: wrk's own,
   corrected for coordinated omission). A slice whose answers were not all 2xx stops the benchmark, and so does a
   POST slice whose request ids stored fewer rows than it had answers (a request id sent twice is a replay);
3. statements per authorize and per recorded single event, in-process on the same database, counting BEGIN and
   COMMIT (and savepoints), each statement once even where several share one round trip (core.statements); the
   round trips beside them;
4. the hot account: the authorize benchmark's hot phase (8 clients on one account funded for `--hot-pairs` calls)
   and its books.

Targets (issue 19): at 8 connections, authorize >= 0.5x the floor's requests/s, one event >= 0.4x, balance >= 0.8x;
with one connection authorize p50 <= 2x the floor's p50 and p99 <= 10 ms; statements per authorize <= 6 and per
recorded event <= 8; the hot account exact.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import authorize, harness

DATABASE = "tokenledger_bench_gate"
TARGETS = {"authorize_ratio": 0.5, "record_ratio": 0.4, "balance_ratio": 0.8, "single_p50_x_floor": 2.0}
TARGET_SINGLE_P99_MS = 10.0
TARGET_AUTHORIZE_STATEMENTS = 6
TARGET_RECORD_STATEMENTS = 8

# One Lua state per wrk thread: `setup` numbers the threads, `request` makes each request unique and rotates keys.
LUA = """
local keys = {%(keys)s}
local counter = 0
local next_thread = 0
local mine = nil  -- this thread's keys
-- `thread_number` is a global of each thread's state, set by `setup` (thread:set sets a global: a `local` of that
-- name here would hide it, and every thread would send the same request ids)
function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_number", next_thread)
end
function request()
  counter = counter + 1
  -- thread n takes every %(threads)s-th key from the n-th: the threads never send for the same account (whose rows
  -- authorize and record lock), and a thread's connections take its accounts in turn
  if mine == nil then
    mine = {}
    for i = thread_number, #keys, %(threads)s do mine[#mine + 1] = keys[i] end
    if #mine == 0 then mine = keys end
  end
  local key = mine[(counter %% #mine) + 1]
  local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  local id = "%(prefix)s-" .. thread_number .. "-" .. counter
  local body = %(body)s
  return wrk.format("%(method)s", "%(path)s", headers, body)
end
-- the slice's figures as one JSON line: its requests, time, errors and latency percentiles (microseconds)
function done(summary, latency, requests)
  local points = {}
  for p = 1, 99 do points[#points + 1] = string.format("[%%.1f, %%d]", p, latency:percentile(p)) end
  for t = 991, 1000 do points[#points + 1] = string.format("[%%.1f, %%d]", t / 10, latency:percentile(t / 10)) end
  local e = summary.errors
  io.write(string.format(
    '\\nGATE-SLICE {"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "socket_errors": %%d, "percentiles": [%%s]}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout, table.concat(points, ", ")))
end
"""


def _lua_body(**fields: object) -> str:
    """A Lua expression for a JSON body whose `request_id` is the Lua variable `id`."""
    rest = json.dumps({**fields, "operation_type": "bench_call"})[1:]
    return '\'{"request_id":"\' .. id .. \'",' + rest + "'"


BODIES = {
    "authorize": _lua_body(
        model=authorize.MODEL, input_tokens=authorize.INPUT_TOKENS, max_output_tokens=authorize.MAX_OUTPUT_TOKENS
    ),
    "record": _lua_body(
        model=authorize.MODEL, input_tokens=authorize.INPUT_TOKENS, output_tokens=authorize.OUTPUT_TOKENS
    ),
}


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    body: str  # a Lua expression ("nil" for GET)


ENDPOINTS = [
    Endpoint("floor", "GET", "/bench/floor", "nil"),
    Endpoint("balance", "GET", "/api/billing/balance", "nil"),
    Endpoint("authorize", "POST", "/api/usage/authorize", BODIES["authorize"]),
    Endpoint("record", "POST", "/api/usage/events", BODIES["record"]),
]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="seconds each endpoint is loaded (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="turns the endpoints take in those seconds (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--hot-pairs", type=int, default=400, help="calls the hot account is funded for (400)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    args = parser.parse_args()
    if min(args.seconds, args.rounds, args.connections, args.hot_pairs, args.workers) < 1:
        parser.error("every count must be >= 1")
    if args.rounds > args.seconds:
        parser.error("--rounds must not be more than --seconds (a round gives each endpoint whole seconds)")
    if not shutil.which("wrk"):
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    return args


SLICE_MARK = "GATE-SLICE "


def slice_parse(output: str) -> dict[str, Any]:
    """The JSON line the Lua script's `done` prints for one wrk run."""
    for line in output.splitlines():
        if line.startswith(SLICE_MARK):
            parsed: dict[str, Any] = json.loads(line[len(SLICE_MARK) :])
            return parsed
    raise SystemExit(f"wrk printed no figures: {output[-500:]}")


def percentile_merged(slices: list[dict[str, Any]], pct: float) -> float:
    """The `pct` percentile (ms) of the slices' latencies together. Each slice gives its percentiles 1, 2, ... 99
    (each the top of a band of 1% of its requests) and 99.1 ... 100 (0.1% each); the merged percentile is the first
    point, by latency, where the bands' weights reach `pct`: for one slice, exactly wrk's own percentile `pct`.

    wrk's latencies are its own: before `done()` it adds, for each answer slower than twice the mean interval of a
    connection, the answers that connection would have been waiting for meanwhile (its correction for coordinated
    omission), which raises the high percentiles after a stall."""
    weighted: list[tuple[float, float]] = []
    for piece in slices:
        for point, microseconds in piece["percentiles"]:
            weighted.append((microseconds, piece["requests"] * (0.01 if point <= 99 else 0.001)))
    weighted.sort()
    total = sum(weight for _, weight in weighted)
    passed = 0.0
    for microseconds, weight in weighted:
        passed += weight
        if passed >= total * pct / 100 * (1 - 1e-12):  # the sum of the weights, not rounded below its band
            return round(microseconds / 1000, 2)
    return round(weighted[-1][0] / 1000, 2) if weighted else 0.0


def wrk_slice(*, server: harness.Server, endpoint: Endpoint, keys: list[str], connections: int, seconds: int,
              prefix: str) -> dict[str, Any]:  # fmt: skip
    """One wrk run: its figures (slice_parse) and the server's CPU seconds in it (app: gunicorn, db: PostgreSQL)."""
    threads = max(1, min(2, connections))
    script = LUA % {
        "keys": ", ".join(json.dumps(key) for key in keys),
        "threads": threads,
        "prefix": prefix,
        "body": endpoint.body,
        "method": endpoint.method,
        "path": endpoint.path,
    }
    with tempfile.NamedTemporaryFile("w", prefix="bench-gate-", suffix=".lua", delete=False) as lua:
        lua.write(script)
    command = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s",
        "-s", lua.name, f"http://127.0.0.1:{server.port}{endpoint.path}",
    ]  # fmt: skip
    meter = harness.CpuMeter(database=DATABASE, server_pid=server.process.pid)
    meter.start()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    cpu = meter.stop()
    Path(lua.name).unlink()
    if done.returncode != 0:
        raise SystemExit(f"wrk failed for {endpoint.name}: {done.stderr or done.stdout}")
    figures = slice_parse(done.stdout)
    # wrk's own CPU is not this process's: the client share is left out
    figures["cpu_s"] = {part: cpu[f"{part}_cpu_s"] for part in ("app", "db")}
    figures["stored"] = stored_count(endpoint=endpoint, prefix=prefix)
    return figures


# what a POST of each endpoint stores under its request id: every one answered must be a new one (not a replay)
STORED_BY = {"authorize": "usage_reservation", "record": "usage_usageevent"}


def stored_count(*, endpoint: Endpoint, prefix: str) -> int | None:
    """The rows the slice's requests stored (their request ids start with the slice's prefix); None for a GET."""
    table = STORED_BY.get(endpoint.name)
    if table is None:
        return None
    import psycopg

    with psycopg.connect(harness.database_dsn(DATABASE), autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE request_id LIKE %s", (f"{prefix}-%",)).fetchone()
    return int(row[0]) if row else 0


def replays_check(figures: dict[str, dict[str, Any]], *, connections: int) -> None:
    """Each POST slice stored one row per answer, give or take the requests still in flight when wrk stopped: a
    request id sent twice would be answered as a replay, which costs less than the work measured."""
    for name, each in figures.items():
        stored, answered = each.get("stored"), each["requests"]
        in_flight = connections * len(each["slices_requests_per_second"])  # at most one per connection per slice
        if stored is not None and not answered <= stored <= answered + in_flight:
            raise SystemExit(f"{name}: {answered} answers stored {stored} rows: request ids were sent more than once")


def slices_figures(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One endpoint's figures from its slices: requests/s over their time, merged percentiles, errors, CPU."""
    requests = sum(piece["requests"] for piece in slices)
    seconds = sum(piece["duration_us"] for piece in slices) / 1_000_000
    figures: dict[str, Any] = {
        "requests": requests,
        "requests_per_second": round(requests / seconds, 2) if seconds else 0.0,
        **{f"p{pct}_ms": percentile_merged(slices, pct) for pct in (50, 90, 99)},
        "non_2xx": sum(piece["non_2xx"] for piece in slices),
        "stored": None if slices[0]["stored"] is None else sum(piece["stored"] for piece in slices),
        "socket_errors": sum(piece["socket_errors"] for piece in slices),
        # each slice's own requests/s, in the order run: how far the machine moved during the measurement
        "slices_requests_per_second": [
            round(piece["requests"] * 1_000_000 / piece["duration_us"]) for piece in slices if piece["duration_us"]
        ],
    }
    figures["cpu_ms_per_request"] = {
        part: round(sum(piece["cpu_s"][part] for piece in slices) * 1000 / requests, 3) if requests else 0.0
        for part in ("app", "db")
    }
    return figures


def measure(*, server: harness.Server, keys: list[str], connections: int, seconds: int, rounds: int,
            prefix: str) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Every endpoint under `connections` connections, in `rounds` rounds of `seconds // rounds` s each; the order
    rotates by one endpoint each round."""
    slices: dict[str, list[dict[str, Any]]] = {endpoint.name: [] for endpoint in ENDPOINTS}
    for number in range(rounds):
        turn = number % len(ENDPOINTS)
        for endpoint in ENDPOINTS[turn:] + ENDPOINTS[:turn]:
            piece = wrk_slice(server=server, endpoint=endpoint, keys=keys, connections=connections,
                              seconds=max(1, seconds // rounds), prefix=f"{prefix}{number}-{endpoint.name}")  # fmt: skip
            slices[endpoint.name].append(piece)
    figures = {name: slices_figures(pieces) for name, pieces in slices.items()}
    replays_check(figures, connections=connections)
    for name, each in figures.items():
        if each["non_2xx"] or each["socket_errors"]:  # an error answer is cheaper than the work measured
            raise SystemExit(f"{name}: {each['non_2xx']} non-2xx answers, {each['socket_errors']} socket errors")
    return figures


def statements_per_call(*, key: str) -> dict[str, int]:
    """Statements one authorize and one recorded event send, as Django captures them: BEGIN, COMMIT and savepoints
    are among them (Django logs its transaction statements since 4.2). A captured query is one round trip; one that
    carries several statements (core.statements joins them with ";\\n") counts each. `<name>_round_trips` beside."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    counts: dict[str, int] = {}
    for name, path, body in (
        ("authorize", "/api/usage/authorize", authorize._authorize_body("statements-1")),
        ("record", "/api/usage/events", authorize._record_body("statements-1", authorize.OUTPUT_TOKENS)),
    ):
        # one call first so caches (catalog, key) are warm, as they are in a running server
        warm_id = f"warm-{name}"
        client.post(path, body.replace(b"statements-1", warm_id.encode()), content_type="application/json")
        with CaptureQueriesContext(connection) as queries:
            response = client.post(path, body, content_type="application/json")
        if response.status_code >= 300:
            raise SystemExit(f"{name} answered {response.status_code}: {response.content[:300]!r}")
        counts[name] = sum(len(q["sql"].split(";\n")) for q in queries.captured_queries)
        counts[f"{name}_round_trips"] = len(queries)
    return counts


def main() -> None:
    args = arguments()
    env = harness.prepare_database(DATABASE)
    authorize.catalog_prepare()
    setup = authorize.accounts_prepare(clients=args.connections, hot_pairs=args.hot_pairs)
    harness.django_disconnect()
    with harness.gunicorn(env=env, workers=args.workers, settings_module=authorize.SETTINGS) as server:
        authorize.warm_up(server=server, keys=setup.keys)
        measure(server=server, keys=setup.keys, connections=args.connections, seconds=2, rounds=1, prefix="warm")
        harness.analyze(DATABASE)
        harness.checkpoint(DATABASE)
        each = f"{args.rounds} rounds of {args.seconds // args.rounds} s per endpoint"
        harness.log(f"{args.connections} connections: {each}")
        loaded = measure(server=server, keys=setup.keys, connections=args.connections, seconds=args.seconds,
                         rounds=args.rounds, prefix="load")  # fmt: skip
        harness.log(f"1 connection: {each}")
        single = measure(server=server, keys=setup.keys, connections=1, seconds=args.seconds, rounds=args.rounds,
                         prefix="single")  # fmt: skip
        harness.log(f"hot account: {args.connections} clients on one account funded for {args.hot_pairs} calls")
        hot = authorize.hot_phase(server=server, setup=setup, clients=args.connections, hot_pairs=args.hot_pairs)
    statements = statements_per_call(key=setup.keys[0])
    harness.django_disconnect()

    floor = loaded["floor"]["requests_per_second"] or 1.0
    ratios = {name: round(figures["requests_per_second"] / floor, 3) for name, figures in loaded.items()}
    single_floor_p50 = single["floor"].get("p50_ms", 0.0) or 1.0
    single_authorize = single["authorize"]
    checks = {
        "authorize_ratio": ratios["authorize"] >= TARGETS["authorize_ratio"],
        "record_ratio": ratios["record"] >= TARGETS["record_ratio"],
        "balance_ratio": ratios["balance"] >= TARGETS["balance_ratio"],
        "single_authorize_p50": single_authorize.get("p50_ms", 0) <= TARGETS["single_p50_x_floor"] * single_floor_p50,
        "single_authorize_p99": single_authorize.get("p99_ms", 0) <= TARGET_SINGLE_P99_MS,
        "authorize_statements": statements["authorize"] <= TARGET_AUTHORIZE_STATEMENTS,
        "record_statements": statements["record"] <= TARGET_RECORD_STATEMENTS,
        "hot_account_exact": bool(hot["books"]["ok"]),
    }
    summary = {
        "benchmark": "gate",
        "connections": args.connections,
        "workers": args.workers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "loaded": loaded,
        "single": single,
        "ratios": ratios,
        "statements": statements,
        "hot_account": hot,
        "targets_met": checks,
        "machine": harness.machine(),
    }
    rows = [("connections / workers", f"{args.connections} / {args.workers} gunicorn sync workers")]
    for endpoint in ENDPOINTS:
        figures = loaded[endpoint.name]
        rows.append(
            (
                f"{endpoint.name} ({args.connections} conn)",
                f"{figures['requests_per_second']:,.0f} req/s  x{ratios[endpoint.name]:.2f} floor  "
                f"p50 {figures.get('p50_ms', 0):.1f} ms  p99 {figures.get('p99_ms', 0):.1f} ms  "
                f"non-2xx {figures['non_2xx']}",
            )
        )
    for endpoint in ENDPOINTS:
        figures = single[endpoint.name]
        rows.append(
            (
                f"{endpoint.name} (1 conn)",
                f"p50 {figures.get('p50_ms', 0):.2f} ms  p99 {figures.get('p99_ms', 0):.2f} ms  "
                f"({figures['requests_per_second']:,.0f} req/s)",
            )
        )
    rows += [
        ("statements / authorize", f"{statements['authorize']} in {statements['authorize_round_trips']} round trips  "
                                   f"(target <= {TARGET_AUTHORIZE_STATEMENTS})"),
        ("statements / event", f"{statements['record']} in {statements['record_round_trips']} round trips  "
                               f"(target <= {TARGET_RECORD_STATEMENTS})"),
        ("hot: allowed / funded", f"{hot['allowed']} / {args.hot_pairs}; books {'ok' if hot['books']['ok'] else 'WRONG'}"),
        ("targets", ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in checks.items())),
        ("load average (1 min)", f"{harness.load_average():.1f}"),
    ]  # fmt: skip
    print(harness.table(rows, "bench/gate"))
    print(json.dumps(summary, default=str))
    if not args.keep_db:
        harness.database_drop(DATABASE)
    if not hot["books"]["ok"]:
        raise SystemExit("the hot account's books do not balance")


if __name__ == "__main__":
    main()
