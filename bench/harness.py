"""What the benchmarks share: a throwaway PostgreSQL database, Django set up against it, gunicorn, HTTP clients.

Everything talks to 127.0.0.1 only. A benchmark owns its database (dropped and re-created at start) and Redis
database 10 (flushed at start). Nothing here is imported by the application.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REDIS_URL = "redis://127.0.0.1:6379/10"
SECRET_KEY = "bench-only-secret-key-not-for-production"  # noqa: S105 - a throwaway server on 127.0.0.1

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def bench_env(*, database: str, settings_module: str = "config.settings") -> dict[str, str]:
    """The environment the app runs with during a benchmark: production-like (DEBUG off), PostgreSQL and Redis."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url(database),
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": SECRET_KEY,
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- PostgreSQL and Redis -----------------------------------------------------------------------------------------


def database_recreate(name: str) -> None:
    """Drop the benchmark database (closing its sessions) and create it empty."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def database_dsn(name: str) -> str:
    return f"host=127.0.0.1 port=5432 user=postgres dbname={name}"


def postgres_settings() -> dict[str, str]:
    import psycopg

    names = ["server_version", "shared_buffers", "synchronous_commit", "fsync", "max_connections"]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]


def checkpoint(name: str) -> None:
    """Flush dirty pages before a timed phase, so no phase pays for the writes of the one before."""
    import psycopg

    with psycopg.connect(database_dsn(name), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def analyze(name: str) -> None:
    """Planner statistics for every table, as autovacuum keeps them on a running database, before a timed phase.

    A benchmark's database is new: its tables were empty when the server's connections first planned their
    prepared statements (core.statements), and without statistics the planner may take any index that starts with
    the account for `account_id = $1 AND request_id = $2`, then scan the account's reservations or events row by
    row, a cost that grows as the run adds them. Autovacuum's ANALYZE would replace those plans within a minute;
    where autovacuum is off (some test machines) nothing would. ANALYZE invalidates the plans; the next run of each
    statement plans it again from these statistics."""
    import psycopg

    with psycopg.connect(database_dsn(name), autocommit=True) as conn:
        conn.execute("ANALYZE")


def redis_flush() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def manage(*args: str, env: dict[str, str]) -> None:
    """Run a manage.py command in a child process; its output is shown only when it fails."""
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"manage.py {' '.join(args)} failed with exit code {done.returncode}")


def prepare_database(name: str) -> dict[str, str]:
    """A fresh database with the schema and the seed catalog, Redis db 10 flushed; Django set up in this process."""
    log(f"database {name}: drop, create, migrate, seed_catalog; flush Redis db 10")
    database_recreate(name)
    redis_flush()
    env = bench_env(database=name)
    manage("migrate", "--noinput", env=env)
    manage("seed_catalog", env=env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "LOG_LEVEL")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    return env


def django_disconnect() -> None:
    from django.db import connections

    connections.close_all()


# --- gunicorn -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A free port: from BENCH_PORTS ("8700-8799") when set (a shared machine gives each person a range), else any."""
    first, _, last = os.environ.get("BENCH_PORTS", "").partition("-")
    if first and last:
        for port in range(int(first), int(last) + 1):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise SystemExit(f"no free port in BENCH_PORTS={first}-{last}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def gunicorn(
    *, env: dict[str, str], workers: int = 2, settings_module: str = "config.settings", timeout: int = 120
) -> Iterator[Server]:
    """gunicorn with `workers` sync workers on a free port, started and waited for (/healthz), then stopped."""
    port = free_port()
    run_env = dict(env)
    run_env["DJANGO_SETTINGS_MODULE"] = settings_module
    log_file = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    command = [
        PYTHON, "-m", "gunicorn", "config.wsgi:application", "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}", "--timeout", str(timeout), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env=run_env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(port=port, process=process, log_path=Path(log_file.name))
    try:
        _wait_healthy(server)
        log(
            f"gunicorn pid {process.pid}: {workers} workers on 127.0.0.1:{port} ({settings_module}); log {log_file.name}"
        )
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()


def _wait_healthy(server: Server, deadline_seconds: float = 60) -> None:
    deadline = time.monotonic() + deadline_seconds
    last = ""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.process.returncode}; see {server.log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = response.read()
            conn.close()
            if response.status == 200:
                return
            last = f"{response.status} {body[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer /healthz within {deadline_seconds}s: {last}; see {server.log_path}")


# --- HTTP client --------------------------------------------------------------------------------------------------


class ApiClient:
    """One keep-alive connection (http.client reconnects by itself when the server closes after a response).

    gunicorn's sync worker closes the connection after each response, so every request pays a TCP connect on
    127.0.0.1 (tens of microseconds); the baselines pay it too.
    """

    def __init__(self, port: int, api_key: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """Status, body and seconds taken. A connection dropped before the answer is retried once (every endpoint
        measured here is idempotent by request id)."""
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
                return response.status, data, time.perf_counter() - started
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, payload: Any) -> tuple[int, Any, float]:
        status, data, seconds = self.call(
            "POST", path, payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        )
        return status, json.loads(data) if data else None, seconds

    def get(self, path: str) -> tuple[int, Any, float]:
        status, data, seconds = self.call("GET", path)
        return status, json.loads(data) if data else None, seconds

    def close(self) -> None:
        self.conn.close()


def run_clients(count: int, work: Callable[[int], None]) -> float:
    """Run `work(client_index)` in `count` threads started together; the wall-clock seconds until all finish.

    The first exception raised by any client is raised here once all have stopped.
    """
    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


# --- CPU accounting -----------------------------------------------------------------------------------------------
# The machine is shared (2 cores): wall-clock figures move with whatever else runs. The CPU seconds the app
# workers, their PostgreSQL backends and the load generator spend are steadier, so every phase reports both.

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except OSError:
        return []


def load_average() -> float:
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


class CpuMeter:
    """CPU seconds spent during a phase by the gunicorn workers, the database's backends and this process.

    Backends come and go (CONN_MAX_AGE), so a thread samples them every 0.2 s; a backend that exits between two
    samples loses at most its last 0.2 s, one born and gone between two samples is missed.
    """

    def __init__(self, *, database: str, server_pid: int | None = None) -> None:
        self.database = database
        self.server_pid = server_pid
        self.workers: dict[int, float] = {}
        self.backends: dict[int, tuple[float, float]] = {}  # pid -> (first seen, last seen)
        self.stopping = threading.Event()
        self.sampler = threading.Thread(target=self._sample_loop, daemon=True)

    def _backend_pids(self, conn: Any) -> list[int]:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.database,)
        ).fetchall()
        return [int(row[0]) for row in rows]

    def _sample(self, conn: Any, *, initial: bool = False) -> None:
        for pid in self._backend_pids(conn):
            now = cpu_seconds(pid)
            if now is None:
                continue
            # a backend already there at the start counts from then; one that appeared later, from its birth
            first = self.backends[pid][0] if pid in self.backends else (now if initial else 0.0)
            self.backends[pid] = (first, now)

    def _sample_loop(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            while not self.stopping.wait(0.2):
                self._sample(conn)
            self._sample(conn)

    def start(self) -> None:
        import psycopg

        if self.server_pid is not None:
            self.workers = {pid: cpu_seconds(pid) or 0.0 for pid in children(self.server_pid)}
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            self._sample(conn, initial=True)
        self.started_process = time.process_time()
        self.load_before = load_average()
        self.sampler.start()

    def stop(self) -> dict[str, float]:
        client = time.process_time() - self.started_process
        self.stopping.set()
        self.sampler.join()
        app = sum((cpu_seconds(pid) or before) - before for pid, before in self.workers.items())
        database = sum(last - first for first, last in self.backends.values())
        return {
            "app_cpu_s": round(app, 2),
            "db_cpu_s": round(database, 2),
            "client_cpu_s": round(client, 2),
            "total_cpu_s": round(app + database + client, 2),
            "load_average_1m_before": self.load_before,
            "load_average_1m_after": load_average(),
        }


# --- figures ------------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, value: float) -> None:
        with self.lock:
            self.seconds.append(value)

    def extend(self, values: Sequence[float]) -> None:
        with self.lock:
            self.seconds.extend(values)

    def summary_ms(self) -> dict[str, float]:
        values = self.seconds
        return {
            "count": len(values),
            "p50_ms": round(percentile(values, 50) * 1000, 2),
            "p90_ms": round(percentile(values, 90) * 1000, 2),
            "p99_ms": round(percentile(values, 99) * 1000, 2),
            "max_ms": round(max(values, default=0) * 1000, 2),
        }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": postgres_settings(),
    }


def table(rows: Sequence[tuple[str, str]], title: str) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)


def target(value: float, *, at_least: float | None = None, at_most: float | None = None) -> str:
    if at_least is not None:
        return f"{'met' if value >= at_least else 'MISSED'} (target >= {at_least:g})"
    if at_most is not None:
        return f"{'met' if value <= at_most else 'MISSED'} (target <= {at_most:g})"
    return ""
