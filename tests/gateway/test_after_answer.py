"""A whole answer's recording starts once the answer has been written to the client, not while it is being written
(its Python work would take the GIL from the event loop that writes it); should the gateway never say the answer
went out, the recording starts after a short wait all the same. A stream's recording likewise waits until the
events before its last are written, and its last event waits for the recording. PostgreSQL only: on SQLite a call is recorded before
it is answered (gateway/views.py)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.db import connection

from gateway import asgi, relay, views
from tests.gateway.conftest import eventually, wallet_of
from tests.gateway.fake_upstream import FakeUpstream
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

CALL = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture(autouse=True)
def _records_after_answering() -> None:
    if connection.vendor == "sqlite":
        pytest.skip("on SQLite a call is recorded before it is answered (gateway/views.py)")


def _call(gateway_url: str, account: Any, *, stream: bool = False) -> httpx.Response:
    return httpx.post(f"{gateway_url}/gateway/openai/v1/chat/completions", json={**CALL, "stream": stream},
                      timeout=30, headers={"authorization": f"Bearer {account.api_key}"})  # fmt: skip


def test_the_recording_starts_after_the_answer_is_written(
    gateway_url: str, account: Any, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    send_response, record = asgi.GatewayASGIHandler.send_response, views.gateway_record

    async def slow_send(self: Any, response: Any, send: Any) -> None:
        await asyncio.sleep(0.3)  # a slow client: the recording would start meanwhile if it did not wait
        await send_response(self, response, send)
        order.append("written")

    def recording(**kwargs: Any) -> Any:
        order.append("recording")
        return record(**kwargs)

    monkeypatch.setattr(asgi.GatewayASGIHandler, "send_response", slow_send)
    monkeypatch.setattr(views, "gateway_record", recording)
    assert _call(gateway_url, account).status_code == 200
    event = eventually(lambda: UsageEvent.objects.filter(account=account).first())
    assert order == ["written", "recording"]
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_an_answer_never_said_to_be_written_is_recorded_after_a_short_wait(
    gateway_url: str, account: Any, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asgi, "response_sent", lambda response: None)
    monkeypatch.setattr(relay, "SENT_WAIT_SECONDS", 0.5)
    answered = time.monotonic()
    assert _call(gateway_url, account).status_code == 200
    event = eventually(lambda: UsageEvent.objects.filter(account=account).first())
    assert event is not None and time.monotonic() - answered >= 0.5
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_streams_events_are_written_before_its_recording_starts_and_its_end_after(
    gateway_url: str, account: Any, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    serve, settle = asgi.GatewayASGIHandler.serve, relay.gateway_settle

    async def serve_to_a_slow_client(self: Any, scope: Any, body: bytes, receive: Any, send: Any) -> None:
        async def slow_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                await asyncio.sleep(0.2 if not order else 0)  # the first write takes its time
                await send(message)
                order.append("written")
                return
            await send(message)

        await serve(self, scope, body, receive, slow_send)

    def recording(**kwargs: Any) -> Any:
        order.append("recording")
        return settle(**kwargs)

    monkeypatch.setattr(asgi.GatewayASGIHandler, "serve", serve_to_a_slow_client)
    monkeypatch.setattr(relay, "gateway_settle", recording)
    answer = _call(gateway_url, account, stream=True)
    assert answer.status_code == 200 and answer.text.rstrip().endswith("data: [DONE]")
    assert order[0] == "written" and order.count("recording") == 1 and order[-1] == "written"
    event = UsageEvent.objects.get(account=account)
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))
