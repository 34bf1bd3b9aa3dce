"""Gateway benchmark (issue 22): what the metering gateway adds over calling the provider directly.

    .venv/bin/python bench/gateway.py [--clients 8] [--requests 2000] [--streams 800] [--workers N] [--rate R]
                                      [--rounds 4]

Needs PostgreSQL (127.0.0.1:5432, user postgres) and Redis (db 10, flushed). The script makes its own database, the
authorize benchmark's `bench` plan (no rate limit), one funded account per client and an upstream pointing at a fake
provider, then runs two processes on free loopback ports (BENCH_PORTS, e.g. 8700-8799, when set): the fake provider
(uvicorn, answering at once: a chat completion with usage, or a four-event stream) and the gateway (uvicorn,
config.asgi, `--workers` processes, GATEWAY_WORKERS or 2 on a multi-core machine, as `make run` runs it). With
`--clients` concurrent keep-alive clients it measures, each after a short warm-up:

1. non-streaming chat completions sent straight to the fake provider and the same through the gateway, each
   client sending its next call as soon as it has its answer (closed loop: the issue's table): latency p50/p99, the
   overhead being the difference (gateway minus direct) at each percentile. The two ways take turns in `--rounds`
   rounds (the machine's speed drifts by a third within minutes on a shared VM), each way's figures from all its
   rounds' calls; so do the comparisons below;
2. streamed chat completions, both ways: time to the first byte of the body, the overhead likewise;
3. with `--rate R`, non-streaming calls and streams again, both ways, the clients together offering R calls a second
   on a fixed schedule (open loop): the overhead of a gateway that is not saturated. A call's latency counts from
   the moment it was due, so a client held up by a slow answer is charged for the wait.

Then the books: every call through the gateway recorded once, every hold released, each wallet equal to its ledger
and to its funding minus its events' credits. Targets (issue 22): overhead p50 <= 5 ms and p99 <= 20 ms for
non-streaming calls with 8 clients; time to first byte of a stream adds <= 5 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import authorize, harness

DATABASE = "tokenledger_bench_gateway"
MODEL = authorize.MODEL
FUNDING = Decimal(10**9)
TARGET_P50_MS, TARGET_P99_MS, TARGET_TTFB_MS = 5.0, 20.0, 5.0
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
CHAT_PATH, GATEWAY_CHAT_PATH = "/v1/chat/completions", "/gateway/openai/v1/chat/completions"


async def fake_provider(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An OpenAI-compatible provider answering at once (run in its own process by `--serve-fake`)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    asked = json.loads(body or b"{}")
    base = {"id": "chatcmpl-bench", "created": 1765000000, "model": MODEL}
    if not asked.get("stream"):
        answer = json.dumps({**base, "object": "chat.completion", "usage": USAGE, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}]}).encode()  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"x-request-id", b"req_bench")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})
        return
    chunk = {**base, "object": "chat.completion.chunk"}
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]},
        {**chunk, "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": USAGE},
    ]
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream"), (b"x-request-id", b"req_bench")]})  # fmt: skip
    for event in [*(json.dumps(e) for e in events), "[DONE]"]:
        await send({"type": "http.response.body", "body": f"data: {event}\n\n".encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def default_workers() -> int:
    """GATEWAY_WORKERS when set, else 2 on a multi-core machine (as run_stack starts the gateway)."""
    configured = os.environ.get("GATEWAY_WORKERS", "")
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return 2 if (os.cpu_count() or 1) > 1 else 1


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients (default 8)")
    parser.add_argument("--requests", type=int, default=2000, help="non-streaming calls per side (default 2000)")
    parser.add_argument("--streams", type=int, default=800, help="streamed calls per side (default 800)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="gateway processes (uvicorn --workers; default GATEWAY_WORKERS, else 2 on a multi-core "
                             "machine)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=None, metavar="R",
                        help="also measure non-streaming calls offered at R calls/s in all (open loop)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds in which the two ways take turns, for each comparison (default 4)")  # fmt: skip
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    parser.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake is None and min(args.clients, args.requests, args.streams, args.workers, args.rounds) < 1:
        parser.error("every count must be >= 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    return args


def free_port() -> int:
    """A free loopback port: from BENCH_PORTS ("8700-8799") when set (a shared machine gives each person a range)."""
    return harness.free_port()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (uvicorn's supervisor and its workers)."""
    total = harness.cpu_seconds(pid) or 0.0
    return total + sum(process_tree_cpu(child) for child in harness.children(pid))


@contextmanager
def uvicorn_process(name: str, command: list[str], env: dict[str, str], port: int) -> Iterator[int]:
    log_file = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(command, cwd=harness.REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}; see {log_file.name}")
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start; see {log_file.name}") from None
                time.sleep(0.2)
        harness.log(f"{name} pid {process.pid} on 127.0.0.1:{port}; log {log_file.name}")
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


def prepare(*, clients: int, fake_port: int) -> list[str]:
    """The bench plan, one funded account per client, and the upstream the gateway sends to."""
    from billing.services.accounts import account_create
    from gateway.models import Upstream
    from gateway.services import upstream_save

    authorize.catalog_prepare()
    upstream_save(upstream=Upstream(name="fake", kind="openai", base_url=f"http://127.0.0.1:{fake_port}/v1",
                                    connect_retries=0), api_key="sk-bench-upstream")  # fmt: skip
    keys = []
    for index in range(clients):
        _, key = account_create(name=f"gateway bench {index}", plan_code=authorize.PLAN, credits=FUNDING)
        keys.append(key)
    harness.django_disconnect()
    return keys


def _chat_body(*, stream: bool) -> bytes:
    messages = [{"role": "user", "content": "Say hello " * 20}]
    return json.dumps({"model": MODEL, "messages": messages, "max_tokens": 500, "stream": stream}).encode()


@dataclass
class Side:
    """One way of calling: straight to the fake provider, or through the gateway; what its rounds added up to."""

    port: int
    pid: int  # the server process (the fake provider's, or uvicorn's supervisor of the gateway's workers)
    path: str
    keys: list[str]
    latency: harness.Latencies = field(default_factory=harness.Latencies)
    calls: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    db_cpu_s: float = 0.0

    def figures(self, rate: float | None) -> dict[str, Any]:
        figures: dict[str, Any] = self.latency.summary_ms()
        figures["calls_per_second"] = round(self.calls / self.seconds, 1) if self.seconds else 0.0
        if rate is not None:
            figures["offered_calls_per_second"] = rate
        figures["cpu_ms_per_call"] = {"server": round(self.server_cpu_s * 1000 / self.calls, 2),
                                      "db": round(self.db_cpu_s * 1000 / self.calls, 2)}  # fmt: skip
        return figures


def phase(side: Side, *, total: int, stream: bool, rate: float | None = None) -> None:
    """`total` calls spread over one keep-alive client per key, added to `side`: latency to the whole answer (or,
    for a stream, to the first byte of its body, the stream then read to the end), and the CPU the server's
    processes (the side's `pid` and its children) and the database's backends spent: steadier than wall-clock time
    on a shared machine.

    Without `rate` each client sends its next call when it has the answer (closed loop). With it the clients take
    turns on one schedule of `rate` calls a second (open loop), and a call's latency counts from when it was due."""
    keys = side.keys
    body = _chat_body(stream=stream)
    shares = authorize._shares(total, len(keys))
    clients = len(keys)
    start_at: list[float] = []

    def work(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", side.port, timeout=60)
        headers = {"Authorization": f"Bearer {keys[index]}", "Content-Type": "application/json"}
        for number in range(shares[index]):
            started = time.perf_counter()
            if rate is not None:
                if not start_at:
                    start_at.append(started + 0.05)
                due = start_at[0] + (number * clients + index) / rate
                if due > started:
                    time.sleep(due - started)
                started = due
            conn.request("POST", side.path, body=body, headers=headers)
            response = conn.getresponse()
            if stream:
                first = response.read1(65536)
                took = time.perf_counter() - started
                rest = response.read()
                if response.status != 200 or not first or b"[DONE]" not in first + rest:
                    raise SystemExit(f"stream: HTTP {response.status} {first[:300]!r}")
            else:
                answer = response.read()
                took = time.perf_counter() - started
                if response.status != 200:
                    raise SystemExit(f"call: HTTP {response.status} {answer[:300]!r}")
            side.latency.add(took)
        conn.close()

    meter = harness.CpuMeter(database=DATABASE)
    meter.start()
    server_cpu = process_tree_cpu(side.pid)
    side.seconds += harness.run_clients(len(keys), work)
    side.server_cpu_s += process_tree_cpu(side.pid) - server_cpu
    side.db_cpu_s += meter.stop()["db_cpu_s"]
    side.calls += total


def compare(
    *, direct: dict[str, Any], through: dict[str, Any], total: int, stream: bool, rounds: int,
    rate: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Both ways, `total` calls each, in `rounds` rounds that take turns (direct first in even rounds, the gateway
    first in odd ones), so that a machine whose speed drifts moves both alike; each way's figures from its rounds'
    calls together."""
    sides = Side(**direct), Side(**through)
    for number, calls in enumerate(authorize._shares(total, rounds)):
        for side in sides if number % 2 == 0 else sides[::-1]:
            phase(side, total=calls, stream=stream, rate=rate)
    return sides[0].figures(rate), sides[1].figures(rate)


def books(*, expected_events: int) -> dict[str, Any]:
    from billing.models import LedgerEntry, Wallet
    from usage.models import Reservation, UsageEvent

    events = UsageEvent.objects.count()
    wallets_ok = all(
        w.balance == sum((e.credits for e in LedgerEntry.objects.filter(wallet=w)), Decimal(0))
        and w.balance == FUNDING - sum((e.credits for e in UsageEvent.objects.filter(account_id=w.account_id)), Decimal(0))
        and w.held == 0
        for w in Wallet.objects.all()
    )  # fmt: skip
    active = Reservation.objects.filter(status=Reservation.Status.ACTIVE).count()
    harness.django_disconnect()
    return {"events": events, "expected_events": expected_events, "active_holds": active, "wallets_ok": wallets_ok,
            "ok": events == expected_events and active == 0 and wallets_ok}  # fmt: skip


def measure(
    *, args: argparse.Namespace, keys: list[str], fake: tuple[int, int], gateway: tuple[int, int]
) -> dict[str, Any]:
    """Warm both sides up, then each phase straight to the fake provider and through the gateway (port, pid)."""
    direct: dict[str, Any] = {"port": fake[0], "pid": fake[1], "path": CHAT_PATH, "keys": keys}
    through: dict[str, Any] = {"port": gateway[0], "pid": gateway[1], "path": GATEWAY_CHAT_PATH, "keys": keys}
    warm = max(len(keys), args.requests // 20)
    for stream in (False, True):
        compare(direct=direct, through=through, total=warm, stream=stream, rounds=1)
    harness.analyze(DATABASE)
    results: dict[str, Any] = {"warm_up_calls": 2 * warm, "rounds": args.rounds,
                               "load_average_before": harness.load_average()}  # fmt: skip
    turns = f"in {args.rounds} rounds taking turns"
    harness.log(f"non-streaming: {args.requests} calls each way, {args.clients} clients, {turns}")
    results["direct"], results["gateway"] = compare(
        direct=direct, through=through, total=args.requests, stream=False, rounds=args.rounds
    )
    harness.log(f"streams: {args.streams} calls each way, {turns}")
    results["direct_stream_ttfb"], results["gateway_stream_ttfb"] = compare(
        direct=direct, through=through, total=args.streams, stream=True, rounds=args.rounds
    )
    if args.rate is not None:
        harness.log(f"paced: {args.requests} calls each way offered at {args.rate:g} calls/s, {turns}")
        results["direct_paced"], results["gateway_paced"] = compare(
            direct=direct, through=through, total=args.requests, stream=False, rounds=args.rounds, rate=args.rate
        )
        harness.log(f"paced streams: {args.streams} calls each way offered at {args.rate:g} calls/s, {turns}")
        results["direct_paced_stream_ttfb"], results["gateway_paced_stream_ttfb"] = compare(
            direct=direct, through=through, total=args.streams, stream=True, rounds=args.rounds, rate=args.rate
        )
    results["load_average_after"] = harness.load_average()
    return results


def main() -> None:
    args = arguments()
    if args.serve_fake is not None:
        import uvicorn

        uvicorn.run(fake_provider, host="127.0.0.1", port=args.serve_fake, log_level="warning", lifespan="off")
        return
    env = harness.prepare_database(DATABASE)
    fake_port = free_port()
    keys = prepare(clients=args.clients, fake_port=fake_port)
    python = harness.PYTHON
    with uvicorn_process("fake provider", [python, "bench/gateway.py", "--serve-fake", str(fake_port)], env,
                         fake_port) as fake_pid:  # fmt: skip
        gateway_port = free_port()
        # lifespan on: stopping the gateway waits for the recordings still running (gateway/asgi.py)
        command = [python, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port",
                   str(gateway_port), "--lifespan", "on", "--log-level", "warning", "--no-access-log",
                   "--workers", str(args.workers)]  # fmt: skip
        with uvicorn_process("gateway", command, env, gateway_port) as gateway_pid:
            results = measure(args=args, keys=keys, fake=(fake_port, fake_pid), gateway=(gateway_port, gateway_pid))
    expected = (results["warm_up_calls"] + args.requests + args.streams
                + (args.requests + args.streams if args.rate else 0))  # fmt: skip
    results["books"] = books(expected_events=expected)
    report(args, results)
    if not args.keep_db:
        harness.database_drop(DATABASE)
    if not results["books"]["ok"]:
        raise SystemExit(f"the books do not balance: {results['books']}")


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    direct, gateway = results["direct"], results["gateway"]
    ttfb_direct, ttfb_gateway = results["direct_stream_ttfb"], results["gateway_stream_ttfb"]
    p50 = gateway["p50_ms"] - direct["p50_ms"]
    p99 = gateway["p99_ms"] - direct["p99_ms"]
    ttfb = ttfb_gateway["p50_ms"] - ttfb_direct["p50_ms"]
    ttfb99 = ttfb_gateway["p99_ms"] - ttfb_direct["p99_ms"]
    overhead = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "stream_ttfb_p50_ms": round(ttfb, 2),
                "stream_ttfb_p99_ms": round(ttfb99, 2)}  # fmt: skip
    paced_rows = []
    if args.rate is not None:
        paced_direct, paced_gateway = results["direct_paced"], results["gateway_paced"]
        paced_ttfb_direct, paced_ttfb_gateway = (
            results["direct_paced_stream_ttfb"],
            results["gateway_paced_stream_ttfb"],
        )
        paced = {"p50_ms": round(paced_gateway["p50_ms"] - paced_direct["p50_ms"], 2),
                 "p99_ms": round(paced_gateway["p99_ms"] - paced_direct["p99_ms"], 2),
                 "stream_ttfb_p50_ms": round(paced_ttfb_gateway["p50_ms"] - paced_ttfb_direct["p50_ms"], 2),
                 "stream_ttfb_p99_ms": round(paced_ttfb_gateway["p99_ms"] - paced_ttfb_direct["p99_ms"], 2)}  # fmt: skip
        overhead["paced"] = paced
        paced_rows = [
            (f"paced {args.rate:g}/s direct", f"p50 {paced_direct['p50_ms']:.2f} ms, p99 {paced_direct['p99_ms']:.2f} ms, {paced_direct['calls_per_second']:,.0f} calls/s"),
            (f"paced {args.rate:g}/s gateway", f"p50 {paced_gateway['p50_ms']:.2f} ms, p99 {paced_gateway['p99_ms']:.2f} ms, {paced_gateway['calls_per_second']:,.0f} calls/s"),
            ("paced overhead p50", f"{paced['p50_ms']:.2f} ms  {harness.target(paced['p50_ms'], at_most=TARGET_P50_MS)}"),
            ("paced overhead p99", f"{paced['p99_ms']:.2f} ms  {harness.target(paced['p99_ms'], at_most=TARGET_P99_MS)}"),
            ("paced stream TTFB added p50", f"{paced['stream_ttfb_p50_ms']:.2f} ms  {harness.target(paced['stream_ttfb_p50_ms'], at_most=TARGET_TTFB_MS)}"),
            ("CPU ms per call, paced gateway", _cpu(paced_gateway)),
        ]  # fmt: skip
    workers = f"{args.workers} uvicorn worker process{'es' if args.workers > 1 else ''}"
    print(
        harness.table(
            [
                ("clients", f"{args.clients} keep-alive, closed loop; gateway: {workers}"),
                ("direct", f"p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.2f} ms, {direct['calls_per_second']:,.0f} calls/s"),
                ("through the gateway", f"p50 {gateway['p50_ms']:.2f} ms, p99 {gateway['p99_ms']:.2f} ms, {gateway['calls_per_second']:,.0f} calls/s"),
                ("overhead p50", f"{p50:.2f} ms  {harness.target(p50, at_most=TARGET_P50_MS)}"),
                ("overhead p99", f"{p99:.2f} ms  {harness.target(p99, at_most=TARGET_P99_MS)}"),
                ("stream TTFB direct", f"p50 {ttfb_direct['p50_ms']:.2f} ms, p99 {ttfb_direct['p99_ms']:.2f} ms"),
                ("stream TTFB gateway", f"p50 {ttfb_gateway['p50_ms']:.2f} ms, p99 {ttfb_gateway['p99_ms']:.2f} ms"),
                ("stream TTFB added p50", f"{ttfb:.2f} ms  {harness.target(ttfb, at_most=TARGET_TTFB_MS)}"),
                ("CPU ms per call, direct", _cpu(direct)),
                ("CPU ms per call, gateway", _cpu(gateway)),
                *paced_rows,
                ("books", "ok" if results["books"]["ok"] else f"WRONG {results['books']}"),
                ("load average (1 min)", f"{results['load_average_before']:.1f} -> {results['load_average_after']:.1f}"),
            ],
            "bench/gateway",
        )
    )  # fmt: skip
    print(json.dumps({"benchmark": "gateway", "clients": args.clients, "gateway_workers": args.workers,
                      "offered_rate": args.rate, **results, "overhead": overhead,
                      "targets": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS, "ttfb_ms": TARGET_TTFB_MS},
                      "machine": harness.machine()}, default=str))  # fmt: skip


def _cpu(figures: dict[str, Any]) -> str:
    per = figures["cpu_ms_per_call"]
    return f"server process {per['server']:.2f} + PostgreSQL {per['db']:.2f}"


if __name__ == "__main__":
    main()
