"""Settings come from the environment; bad values stop start-up with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.environment import ConfigurationError, broker_config, cache_config, database_config, redis_url

ROOT = Path(__file__).resolve().parents[2]


def test_no_database_url_means_sqlite_under_var(tmp_path):
    config = database_config(url="", default_sqlite_path=tmp_path / "tl.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "tl.sqlite3")
    assert config["ATOMIC_REQUESTS"] is True


def test_sqlite_url_with_absolute_path(tmp_path):
    config = database_config(url=f"sqlite:///{tmp_path}/other.sqlite3", default_sqlite_path=tmp_path / "x")
    assert config["NAME"] == f"{tmp_path}/other.sqlite3"


def test_postgres_url_gives_persistent_atomic_connections(tmp_path):
    config = database_config(url="postgres://billing:s3cret@db.internal:6543/ledger", default_sqlite_path=tmp_path)
    assert config["ENGINE"] == "core.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"], config["PASSWORD"]) == (
        "db.internal",
        6543,
        "ledger",
        "billing",
        "s3cret",
    )
    assert config["ATOMIC_REQUESTS"] is True
    assert config["CONN_MAX_AGE"] > 0
    assert config["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize(
    "url",
    ["mysql://root@localhost/db", "postgres://localhost:notaport/db", "postgres://user@host", "sqlite://", "nonsense"],
)
def test_malformed_database_url_names_the_variable(url, tmp_path):
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        database_config(url=url, default_sqlite_path=tmp_path / "x")


@pytest.mark.parametrize("url", ["http://localhost:6379", "redis://:6379/0", "redis://localhost:abc/0", "redis://h/x"])
def test_malformed_redis_url_names_the_variable(url):
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        redis_url(url)


def test_redis_url_switches_cache_and_broker(tmp_path):
    url = redis_url("redis://127.0.0.1:6379/3")
    assert cache_config(redis=url)["BACKEND"] == "core.cache.RedisCache"
    assert broker_config(redis=url, var_dir=tmp_path)[0] == "redis://127.0.0.1:6379/3"


def test_no_redis_means_local_memory_cache_and_filesystem_broker(tmp_path):
    assert cache_config(redis=None)["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    broker, options = broker_config(redis=None, var_dir=tmp_path)
    assert broker == "filesystem://"
    assert Path(options["data_folder_in"]).is_dir()


def test_filesystem_broker_keeps_its_exchange_tables_under_var(tmp_path, monkeypatch):
    """kombu writes `control/*.exchange` relative to the working directory unless told otherwise."""
    import kombu

    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    broker, options = broker_config(redis=None, var_dir=tmp_path / "var")
    queue = kombu.Queue("probe", kombu.Exchange("probe"), routing_key="probe")
    with kombu.Connection(broker, transport_options=options) as connection:
        connection.Producer().publish({"ok": 1}, exchange=queue.exchange, routing_key="probe", declare=[queue])
    assert list((tmp_path / "var" / "celery" / "control").glob("*.exchange"))
    assert not (workdir / "control").exists()


def _start(env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL"}}
    env.update({"TOKENLEDGER_VAR_DIR": str(tmp_path), **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "1", "DATABASE_URL": "postgres://localhost:xx/db"}, "DATABASE_URL"),
        ({"DEBUG": "1", "REDIS_URL": "redis://localhost:port/0"}, "REDIS_URL"),
    ],
)
def test_bad_environment_stops_startup_with_one_line(env, named, tmp_path):
    result = _start(env, tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_good_environment_starts(tmp_path):
    result = _start({"DEBUG": "0", "SECRET_KEY": "x" * 50}, tmp_path)
    assert result.returncode == 0, result.stderr
