"""The gateway served by a real uvicorn on a loopback port (config.asgi, as `make run` serves it), calling the fake
provider served by another; the real `openai` and `anthropic` clients point at the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
import uvicorn
from django.core.management import call_command
from django.db import OperationalError, connections

from billing.models import Wallet
from gateway import relay
from gateway.models import Upstream
from gateway.services import upstream_save
from tests.factories import AccountFactory
from tests.gateway.fake_upstream import FakeUpstream

OPENAI_UPSTREAM_KEY = "sk-upstream-openai-0123456789"
ANTHROPIC_UPSTREAM_KEY = "sk-ant-upstream-0123456789"


def _listening_socket() -> socket.socket:
    """A socket bound to a port the system chooses and handed to uvicorn as it is: two xdist workers probing one
    range for a free port could both pick the same one (seen: "address already in use", every gateway test erred)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    return listener


class ServerThread:
    """A uvicorn server in a thread of this process (so it shares the test database and cache)."""

    def __init__(self, app: Any) -> None:
        self.socket = _listening_socket()
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning",
                                timeout_graceful_shutdown=1)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.server.servers[0].get_loop()

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


_gateway: list[ServerThread] = []  # the session's gateway server, for gateway_settled()


def gateway_settled() -> None:
    """Wait until the gateway has recorded the calls it answered (a whole answer is recorded right after it is sent,
    which settles its hold), so the books can be read as they stand once it has."""
    for server in _gateway:
        asyncio.run_coroutine_threadsafe(relay.after_answer_drain(), server.loop).result(timeout=30)


def _gateway_idle() -> None:
    for server in _gateway:
        asyncio.run_coroutine_threadsafe(relay.background_drain(), server.loop).result(timeout=30)


def _close_db_thread_connections() -> None:
    """Each gateway database thread keeps its connection; close them all (PostgreSQL drops the test database at the
    end only when no connection is left). A barrier puts one task on each thread."""
    workers = relay.db_threads._max_workers
    barrier = threading.Barrier(workers, timeout=5)

    def close() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        connections.close_all()

    for future in [relay.db_threads.submit(close) for _ in range(workers)]:
        future.result()


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    with ServerThread(fake) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="session")
def gateway_url() -> Iterator[str]:
    from config.asgi import application

    with ServerThread(application) as server:
        _gateway.append(server)
        yield server.url
        _gateway.remove(server)
    _close_db_thread_connections()


@pytest.fixture(autouse=True)
def _gateway_settled_after_each_test() -> Iterator[None]:
    """A test ends once the gateway has finished the work it does after answering, so none of it reaches the next
    test's database."""
    yield
    _gateway_idle()


@pytest.fixture
def fake(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.reset()
    return fake_upstream


@pytest.fixture
def catalog(transactional_db: Any) -> None:
    from pricing.models import AIModel
    from pricing.services import model_price_set

    call_command("seed_catalog", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    # the fake provider's Anthropic answers write to the prompt cache: Anthropic's list prices for cache writes
    model_price_set(
        model=AIModel.objects.get(model_id="claude-3-5-haiku"), input_per_million="0.80", output_per_million="4.00",
        cached_input_per_million="0.08", cache_write_per_million="1.00", cache_write_1h_per_million="1.60",
        effective_from=datetime(2024, 1, 2, tzinfo=UTC), reason="cache-write prices",
    )  # fmt: skip


@pytest.fixture
def upstreams(catalog: None, fake: FakeUpstream) -> dict[str, Upstream]:
    url = fake.url  # type: ignore[attr-defined]
    return {
        "openai": upstream_save(upstream=Upstream(name="openai", kind="openai", base_url=f"{url}/v1",
                                                  connect_retries=0), api_key=OPENAI_UPSTREAM_KEY),
        "anthropic": upstream_save(upstream=Upstream(name="anthropic", kind="anthropic", base_url=url,
                                                     connect_retries=0), api_key=ANTHROPIC_UPSTREAM_KEY),
    }  # fmt: skip


@pytest.fixture
def account(upstreams: dict[str, Upstream]) -> Any:
    """A prepaid credit account (jive) with 10,000 credits."""
    return AccountFactory.create(plan="jive", credits="10000")


@pytest.fixture
def openai_client(gateway_url: str, account: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=account.api_key, base_url=f"{gateway_url}/gateway/openai/v1", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(gateway_url: str, account: Any) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=account.api_key, base_url=f"{gateway_url}/gateway/anthropic",
                             max_retries=0) as client:  # fmt: skip
        yield client


def wallet_of(account: Any) -> tuple[Decimal, Decimal]:
    """The account's balance and held credits once the gateway has recorded the whole answers it sent."""
    gateway_settled()
    wallet = Wallet.objects.get(account=account)
    return wallet.balance, wallet.held


def eventually(check: Callable[[], Any], *, within: float = 10.0) -> Any:
    """What `check` answers once it is truthy: for work the gateway finishes after the client has gone."""
    deadline = time.monotonic() + within
    while True:
        try:
            answer = check()
        except OperationalError:  # SQLite's shared in-memory test database: a table locked by the gateway's write
            answer = None
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)
