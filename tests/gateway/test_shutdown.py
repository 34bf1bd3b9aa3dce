"""A whole answer is recorded right after it is sent; a gateway that is stopped (SIGTERM: uvicorn's graceful
shutdown, then the app's lifespan shutdown) still records every call it answered before it exits, and what a process
that died owed (its journal) is recorded by the next gateway that starts."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from tokenledger.usage_mapping import MeteredUsage

from gateway import relay, views
from gateway.formats import ROUTES, call_request_read
from gateway.services import Credentials, gateway_admit, recording_for
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
    record = views.gateway_record

    def held_record(**kwargs: Any) -> Any:
        assert may_record.wait(timeout=30)
        return record(**kwargs)

    monkeypatch.setattr(views, "gateway_record", held_record)
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


def test_a_call_answered_by_a_process_that_died_before_recording_it_is_recorded_when_a_gateway_starts(
    gateway_url: str, account: Any, fake: FakeUpstream
) -> None:
    # what a gateway process does before it answers, then dies: the hold is taken and the recording owed
    call = call_request_read(ROUTES["openai-chat"], json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}).encode())  # fmt: skip
    admission = gateway_admit(route=ROUTES["openai-chat"], call=call, credentials=Credentials(
        api_key=account.api_key, customer=None, request_id="crashed-1", operation_type=""))  # fmt: skip
    usage = MeteredUsage(input_tokens=1200, output_tokens=30, provider_request_id="req_crashed")
    assert wallet_of(account)[1] > 0  # held
    dead = subprocess.Popen(["true"])
    dead.wait()
    journal = Path(settings.VAR_DIR) / "gateway" / f"journal-{dead.pid}.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"account_id": account.pk, "api_key_id": admission.api_key_id,
                                   "event": recording_for(admission=admission, usage=usage, estimated=False).event}) + "\n")  # fmt: skip

    from config.asgi import application

    with ServerThread(application) as gateway:  # a gateway starting takes over what the dead process owed
        asyncio.run_coroutine_threadsafe(relay.after_answer_drain(), gateway.loop).result(timeout=30)

    event = UsageEvent.objects.get(account=account)
    assert (event.request_id, event.input_tokens, event.output_tokens) == ("crashed-1", 1200, 30)
    assert event.provider_request_id == "req_crashed"
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))
    assert not journal.exists()
