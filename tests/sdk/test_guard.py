"""`ledger.guard(...)` around a call, sync and async, against the live server."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from tokenledger import Denied, TokenLedger

from tests.sdk.conftest import wallet_of
from tests.sdk.fake_provider import CHAT_USAGE
from usage.models import Reservation, UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

CHAT_RESPONSE = {
    "id": "chatcmpl-9", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18", "usage": CHAT_USAGE,
    "choices": [],
}  # fmt: skip


class ProviderDown(Exception):
    pass


def test_guard_records_the_usage_of_a_response(ledger: TokenLedger, account: Any) -> None:
    with ledger.guard(model="gpt-4o-mini", input_tokens=1500, max_output_tokens=500, user="u-7") as g:
        assert g.authorization is not None and (g.authorization.held_credits or 0) > 0
        assert wallet_of(account)[1] == g.authorization.held_credits
        result = g.record(CHAT_RESPONSE)
    event = UsageEvent.objects.get(request_id=g.request_id)
    assert (event.model_id, event.input_tokens, event.cached_input_tokens, event.output_tokens) == (
        "gpt-4o-mini", 1200, 1000, 300,
    )  # fmt: skip
    assert (event.reasoning_tokens, event.user) == (100, "u-7")
    assert result.credits == event.credits
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_guard_records_explicit_counts(ledger: TokenLedger, account: Any) -> None:
    with ledger.guard(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500, request_id="g2") as g:
        g.record(input_tokens=1000, output_tokens=100)
    assert wallet_of(account) == (Decimal("9998.9"), Decimal(0))
    assert Reservation.objects.get(request_id="g2").status == "settled"


def test_a_failing_block_releases_the_hold_and_records_nothing(ledger: TokenLedger, account: Any) -> None:
    with (
        pytest.raises(ProviderDown),
        ledger.guard(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500, request_id="g3"),
    ):
        assert wallet_of(account)[1] == Decimal("1.5")
        raise ProviderDown
    assert wallet_of(account) == (Decimal(10000), Decimal(0))
    assert Reservation.objects.get(request_id="g3").status == "released"
    assert not UsageEvent.objects.exists()


def test_a_denial_raises_before_the_block_runs(ledger: TokenLedger, account: Any) -> None:
    ran = []
    with (
        pytest.raises(Denied) as denied,
        ledger.guard(model="claude-3-5-haiku", input_tokens=10**8, max_output_tokens=8000),
    ):
        ran.append(True)
    assert denied.value.reason == "insufficient_credits"
    assert ran == []
    assert wallet_of(account) == (Decimal(10000), Decimal(0))


def test_a_block_that_records_nothing_releases_and_warns(ledger: TokenLedger, account: Any) -> None:
    with (
        pytest.warns(RuntimeWarning, match="recorded no usage"),
        ledger.guard(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500, request_id="g5"),
    ):
        pass
    assert Reservation.objects.get(request_id="g5").status == "released"
    assert wallet_of(account)[1] == Decimal(0)


def test_async_guard(async_ledger_factory: Any, account: Any) -> None:
    async def scenario() -> None:
        async with async_ledger_factory() as ledger:
            async with ledger.guard(model="gpt-4o-mini", input_tokens=1500, max_output_tokens=500,
                                    request_id="ag1") as g:  # fmt: skip
                await g.record(CHAT_RESPONSE)
            with pytest.raises(ProviderDown):
                async with ledger.guard(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500, request_id="ag2"):
                    raise ProviderDown
            with pytest.raises(Denied):
                async with ledger.guard(model="claude-3-5-haiku", input_tokens=10**8, max_output_tokens=8000):
                    raise AssertionError("a denied block never runs")

    asyncio.run(scenario())
    event = UsageEvent.objects.get(request_id="ag1")
    assert (event.input_tokens, event.cached_input_tokens) == (1200, 1000)
    assert Reservation.objects.get(request_id="ag2").status == "released"
    assert UsageEvent.objects.count() == 1
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))
