"""POST /api/usage/events pauses Python's cyclic garbage collector while a batch is recorded (usage.api.events): it is
paused during the batch and enabled after, whether the batch is recorded or fails; of overlapping batches in two
threads, the one that paused it enables it when it ends."""

from __future__ import annotations

import gc
import threading

import pytest

from usage.api import events as events_api

pytestmark = pytest.mark.usefixtures("catalog")


def _event(request_id: str) -> dict:
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 10, "output_tokens": 5}


def test_the_collector_is_paused_during_a_batch_and_enabled_after(jive_account, api_client_for, monkeypatch):
    seen = []
    record = events_api.usage_record_routed

    def recording(**arguments):
        seen.append(gc.isenabled())
        return record(**arguments)

    monkeypatch.setattr(events_api, "usage_record_routed", recording)
    response = api_client_for(jive_account).post("/api/usage/events", {"events": [_event("r1")]}, format="json")

    assert response.status_code == 200 and response.json()["recorded"] == 1
    assert seen == [False]
    assert gc.isenabled()


def test_the_collector_is_enabled_after_a_batch_that_fails(jive_account, api_client_for, monkeypatch):
    def failing(**arguments):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(events_api, "usage_record_routed", failing)
    with pytest.raises(RuntimeError):
        api_client_for(jive_account).post("/api/usage/events", {"events": [_event("r1")]}, format="json")

    assert gc.isenabled()


def test_overlapping_batches_enable_the_collector_when_the_one_that_paused_it_ends():
    pause = events_api.CollectorPause()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    during = []

    def first() -> None:
        with pause:
            first_in.set()
            second_in.wait(5)
            during.append(gc.isenabled())  # both in progress
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with pause:
            second_in.set()
            first_out.wait(5)
            during.append(gc.isenabled())  # the first batch ended; this one is still in progress
        during.append(gc.isenabled())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # never off longer than the batch that paused it: batches overlapping without end cannot keep it off
    assert during == [False, True, True]
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled():
    gc.disable()
    try:
        with events_api.CollectorPause():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
