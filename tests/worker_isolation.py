"""Each pytest-xdist worker gets its own Redis db and its own var/ folder, so workers never see each other's data.

Loaded with `-p tests.worker_isolation` (pyproject.toml's addopts), so it runs at import, before pytest-django
reads the settings: it only rewrites the environment the settings are built from. pytest-django already gives each
worker its own database (PostgreSQL `test_<name>_gw0`, ...; SQLite in memory). Redis cannot be shared with a key
prefix, because each test clears the cache (a FLUSHDB): worker N uses REDIS_URL's db + N. The var/ folder holds
the filesystem broker's queue, file locks and the reconciliation inbox: worker N uses var/xdist-gwN/. Subprocesses
that tests start inherit the environment, so a worker's celery worker or `close_periods` child stays on its data.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # redis-server's default `databases`
BASE_DIR = Path(__file__).resolve().parents[1]


def worker_redis_url(url: str, index: int) -> str:
    """`url` with its db number moved up by the worker's index; refused past the server's last db."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        raise SystemExit("tests in parallel need REDIS_URL as redis://host:port/db, not a unix socket")
    base = int(parts.path.strip("/") or 0)
    db = base + index
    if db >= REDIS_DATABASES:
        raise SystemExit(
            f"REDIS_URL's db {base} plus worker {index} is db {db}, past Redis's last db ({REDIS_DATABASES - 1}): "
            f"use a lower db in REDIS_URL or fewer workers (PYTEST_WORKERS)"
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


def worker_var_dir(var_dir: str | None, worker: str) -> str:
    """The worker's own folder inside the var/ folder the run was given (TOKENLEDGER_VAR_DIR, default var/)."""
    return str(Path(var_dir or BASE_DIR / "var") / f"xdist-{worker}")


def isolate(environ: os._Environ[str] | dict[str, str]) -> None:
    worker = environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ...; unset when the tests run in one process
    if not worker:
        return
    index = int(worker.removeprefix("gw"))
    if environ.get("REDIS_URL"):
        environ["REDIS_URL"] = worker_redis_url(environ["REDIS_URL"], index)
    environ["TOKENLEDGER_VAR_DIR"] = worker_var_dir(environ.get("TOKENLEDGER_VAR_DIR"), worker)


isolate(os.environ)
