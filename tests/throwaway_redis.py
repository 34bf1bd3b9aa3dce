"""A real redis-server on a spare port, which a test can stop and start again (no mocks of Redis)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

PORTS = range(18400, 18500)  # this project's range on the shared machine


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18400-18499 for a throwaway redis-server")


class ThrowawayRedis:
    def __init__(self) -> None:
        self.port = _free_port()
        self.folder = tempfile.mkdtemp(prefix="tl-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)  # waiting for a process to listen, not timing anything
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """Django's cache on a redis-server of the test's own; stopped (if still running) at the end."""
    from core.cache import cache_mark_up

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    server = ThrowawayRedis()
    server.start()
    # restored before the server stops, so that later fixtures clear the default cache, not a stopped server
    on_redis = override_settings(
        CACHES={
            "default": {
                "BACKEND": "core.cache.RedisCache",
                "LOCATION": server.url,
                "KEY_PREFIX": "tokenledger",
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
            }
        }
    )
    on_redis.enable()
    cache_mark_up()
    try:
        yield server
    finally:
        on_redis.disable()
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
        cache_mark_up()
