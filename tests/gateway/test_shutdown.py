"""A whole answer is recorded right after it is sent; a gateway that is stopped (SIGTERM: uvicorn's graceful
shutdown, then the app's lifespan shutdown) still records every call it answered before it exits."""

from __future__ import annotations

import socket
import threading
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.db import connection

from gateway import views
from tests.gateway.conftest import ServerThread, eventually, wallet_of
from tests.gateway.fake_upstream import FakeUpstream
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_gateway_stopped_right_after_answering_records_the_call_before_it_exits(
    gateway_url: str, account: Any, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("on SQLite a call is recorded before it is answered (gateway/views.py)")
    from config.asgi import application

    may_record = threading.Event()
    settle = views.gateway_settle

    def held_settle(**kwargs: Any) -> Any:
        assert may_record.wait(timeout=30)
        return settle(**kwargs)

    monkeypatch.setattr(views, "gateway_settle", held_settle)
    gateway = ServerThread(application).__enter__()
    try:
        answer = httpx.post(f"{gateway.url}/gateway/openai/v1/chat/completions", timeout=30,
                            headers={"authorization": f"Bearer {account.api_key}"},
                            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 5})  # fmt: skip
        assert answer.status_code == 200  # answered while its recording waits
        assert not UsageEvent.objects.exists()

        gateway.server.should_exit = True
        assert eventually(lambda: _refuses_connections(gateway.port))  # the server is shutting down
        gateway.thread.join(timeout=2)
        assert gateway.thread.is_alive()  # and waits for the recording
        may_record.set()
    finally:
        may_record.set()
        gateway.thread.join(timeout=30)

    assert not gateway.thread.is_alive()
    event = UsageEvent.objects.get(account=account)  # recorded before the server's thread ended
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))
