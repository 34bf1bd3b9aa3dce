"""Reading TokenLedger's settings from the environment.

Each function turns one variable into Django or Celery configuration and raises `ConfigurationError` with a
one-line message naming the variable when the value cannot be used, so start-up can stop without a traceback.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ


class ConfigurationError(Exception):
    """A variable's value cannot be used; the message names the variable."""


_POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}


def database_config(*, url: str | None, default_sqlite_path: Path, atomic_requests: bool = True) -> dict[str, Any]:
    """The `default` database from `DATABASE_URL`: PostgreSQL or SQLite, SQLite under `var/` when unset."""
    if not url:
        return _sqlite_config(default_sqlite_path, atomic_requests=atomic_requests)
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
        _ = parts.port  # raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigurationError(
            f"DATABASE_URL is malformed ({exc}); expected postgres://user@host:5432/name"
        ) from None
    if scheme == "sqlite":
        # sqlite:////abs/path.sqlite3 is absolute, sqlite:///rel/path.sqlite3 relative to the working directory
        path = parts.path[1:]
        if not path.strip("/"):
            raise ConfigurationError("DATABASE_URL has no SQLite file path; expected sqlite:////absolute/path.sqlite3")
        return _sqlite_config(Path(path), atomic_requests=atomic_requests)
    if scheme not in _POSTGRES_SCHEMES:
        raise ConfigurationError(
            f"DATABASE_URL has unsupported scheme {scheme!r}; use postgres://... or sqlite:///path"
        )
    if not parts.hostname and not parts.path.strip("/"):
        raise ConfigurationError("DATABASE_URL names no host and no database; expected postgres://user@host/name")
    if not parts.path.strip("/"):
        raise ConfigurationError("DATABASE_URL names no database; expected postgres://user@host:5432/name")
    config = environ.Env.db_url_config(url)
    config.update(
        {
            "ENGINE": "core.postgresql",  # Django's, BEGIN sent with the first statement
            "ATOMIC_REQUESTS": atomic_requests,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    )
    config.setdefault("OPTIONS", {})
    config["OPTIONS"].setdefault("connect_timeout", 5)
    return config


def _sqlite_config(path: Path, *, atomic_requests: bool) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "ATOMIC_REQUESTS": atomic_requests,
        "OPTIONS": {
            # WAL lets the web process read while the worker writes; IMMEDIATE takes the write lock at BEGIN so
            # two writers queue on `timeout` instead of failing with "database is locked" mid-transaction.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


def redis_url(url: str | None) -> str | None:
    """`REDIS_URL` checked: None when unset, otherwise a usable redis:// or rediss:// URL."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"REDIS_URL is malformed ({exc}); expected redis://host:6379/0") from None
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigurationError(f"REDIS_URL has unsupported scheme {parts.scheme!r}; expected redis://host:6379/0")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigurationError("REDIS_URL names no host; expected redis://host:6379/0")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigurationError(f"REDIS_URL database {db!r} is not a number; expected redis://host:6379/0")
    return url


def cache_config(*, redis: str | None) -> dict[str, Any]:
    if redis:
        return {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": redis,
            "KEY_PREFIX": "tokenledger",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tokenledger"}


def broker_config(*, redis: str | None, var_dir: Path) -> tuple[str, dict[str, Any]]:
    """Celery broker URL and transport options: Redis when set, else kombu's filesystem transport under var/."""
    if redis:
        return redis, {"visibility_timeout": 3600}
    queue_dir = var_dir / "celery" / "queue"
    processed_dir = var_dir / "celery" / "processed"
    # kombu keeps its exchange tables in a relative `control/` folder by default: keep them under var/ too
    control_dir = var_dir / "celery" / "control"
    for folder in (queue_dir, processed_dir, control_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "processed_folder": str(processed_dir),
        "control_folder": str(control_dir),
        "store_processed": False,
    }


def credits_setting(name: str, raw: str) -> Decimal:
    """A number of credits from the environment: a decimal >= 0, else a clear error naming the variable."""
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigurationError(f"{name} must be a number of credits, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise ConfigurationError(f"{name} must be a number of credits >= 0, got {raw!r}")
    return value
