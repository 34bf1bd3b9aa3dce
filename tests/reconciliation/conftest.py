"""Reconciliation fixtures: the seed catalog, an account mapped to the samples' OpenAI project, and a helper that
records usage events on the samples' days through the recording service."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from billing.models import Account
from reconciliation.services.runs import RunResult, reconciliation_run
from tests.factories import AccountFactory, EventFactory, events_record

SAMPLES = Path(__file__).parent / "samples"
# the samples are October 2026; the clock is pinned to the month after, so reports and windows do not drift
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pinned_clock():
    with time_machine.travel(NOW, tick=True):
        yield


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.fixture
def account(catalog) -> Account:
    """Mapped to the OpenAI project the samples name."""
    return AccountFactory.create(plan="jive", credits="1000000000", provider_project_ids=["proj_demo"])


@pytest.fixture
def other_account(catalog) -> Account:
    return AccountFactory.create(plan="jive", credits="1000000000")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


Record = Callable[..., None]


@pytest.fixture
def record() -> Record:
    """record(account, (request_id, model, occurred_at, input, cached, output), ...): recorded the day after."""

    def make(account: Account, *events: tuple[str, str, str, int, int, int]) -> None:
        raw = [
            EventFactory.build(request_id=rid, model=model, occurred_at=when, input_tokens=inp, cached_input_tokens=cached,
                         output_tokens=out)
            for rid, model, when, inp, cached, out in events
        ]  # fmt: skip
        received = max(at(e[2].removesuffix("Z")) for e in events) + timedelta(days=1)
        assert events_record(account, raw, received_at=received) == ["recorded"] * len(events)

    return make


def run_file(content: bytes, *, name: str = "file.csv", source: str | None = None, **options: Any) -> RunResult:
    return reconciliation_run(source=source, file=io.BytesIO(content), file_name=name, **options)
