"""`wrap_anthropic`: the real `anthropic` client against the fake provider, metered by the live TokenLedger."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import pytest
from tokenledger import Denied, TokenLedger, wrap_anthropic

from tests.sdk.conftest import wallet_of
from tests.sdk.fake_provider import FakeProvider
from usage.models import Reservation, UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "Say hello " * 20}]


@pytest.fixture(autouse=True)
def haiku_cache_write_prices(catalog: None) -> None:
    """The seed prices Claude 3.5 Haiku without cache writes; an operator adds Anthropic's list prices for them
    (5-minute writes 1.25x input, 1-hour writes 2x), as the fake provider's answers write to the cache."""
    from datetime import UTC, datetime

    from pricing.models import AIModel
    from pricing.services import model_price_set

    model_price_set(
        model=AIModel.objects.get(model_id="claude-3-5-haiku"), input_per_million="0.80", output_per_million="4.00",
        cached_input_per_million="0.08", cache_write_per_million="1.00", cache_write_1h_per_million="1.60",
        effective_from=datetime(2024, 1, 2, tzinfo=UTC), reason="cache-write prices",
    )  # fmt: skip


def _client(provider: FakeProvider, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://fake-anthropic.test", max_retries=max_retries,
        http_client=httpx2.Client(transport=provider.transport()),
    )  # fmt: skip


def _async_client(provider: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url="http://fake-anthropic.test", max_retries=0,
        http_client=httpx2.AsyncClient(transport=provider.async_transport()),
    )  # fmt: skip


def _recorded(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s["json"] for s in sent if s["path"] == "/api/usage/events"]


def _assert_message_recorded(account: Any, request_id: str) -> UsageEvent:
    event = UsageEvent.objects.get(request_id=request_id)
    # 100 uncached + 2,000 read from the cache + 500 written to it
    assert (event.model_id, event.input_tokens, event.cached_input_tokens, event.output_tokens) == (
        "claude-3-5-haiku", 2600, 2000, 400,
    )  # fmt: skip
    assert Reservation.objects.get(request_id=request_id).status == "settled"
    return event


def test_message_is_authorized_then_recorded_with_cache_reads_and_writes(
    ledger: TokenLedger, account: Any, provider: FakeProvider, sent: list[dict[str, Any]]
) -> None:
    client = wrap_anthropic(_client(provider), ledger, operation_type="chat")
    message = client.messages.create(model="claude-3-5-haiku", max_tokens=1000, system="Be brief.",
                                     messages=MESSAGES, tokenledger={"request_id": "m1"})  # fmt: skip
    assert message.content[0].text == "Hello there"
    assert sent[0]["path"] == "/api/usage/authorize" and sent[0]["json"]["max_output_tokens"] == 1000
    event = _assert_message_recorded(account, "m1")
    assert event.operation_type == "chat"
    recorded = _recorded(sent)[0]
    assert (recorded["cache_write_input_tokens"], recorded["cache_write_1h_input_tokens"]) == (300, 200)
    assert (recorded["provider_request_id"], recorded["service_tier"]) == ("req_anthropic_1", "default")
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_stream_is_recorded_from_message_start_and_message_delta(
    ledger: TokenLedger, account: Any, provider: FakeProvider, sent: list[dict[str, Any]]
) -> None:
    client = wrap_anthropic(_client(provider), ledger)
    stream = client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES, stream=True,
                                    tokenledger={"request_id": "m2"})  # fmt: skip
    text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    assert text == "Hello there"
    event = _assert_message_recorded(account, "m2")  # output 400 from message_delta, not 1 from message_start
    assert _recorded(sent)[0]["provider_request_id"] == "req_anthropic_1"
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_stream_left_before_its_final_count_keeps_its_input_and_counts_the_text_seen(
    ledger: TokenLedger, account: Any, provider: FakeProvider
) -> None:
    """message_start counts the input and one output token; the stream is closed after the first text, before
    message_delta's final count: the input stays as the provider counted it, the output is the text seen (11
    characters, 3 tokens at 4 characters each), marked as an estimate."""
    client = wrap_anthropic(_client(provider), ledger)
    stream = client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES, stream=True,
                                    tokenledger={"request_id": "m-left"})  # fmt: skip
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()

    recorded = UsageEvent.objects.get(request_id="m-left")
    assert (recorded.input_tokens, recorded.cached_input_tokens, recorded.output_tokens) == (2600, 2000, 3)
    assert recorded.metadata["tokenledger_usage_estimated"] is True
    assert wallet_of(account) == (Decimal(10000) - recorded.credits, Decimal(0))


def test_a_provider_error_releases_the_hold_and_records_nothing(
    ledger: TokenLedger, account: Any, provider: FakeProvider
) -> None:
    provider.failures = [529]
    client = wrap_anthropic(_client(provider), ledger)
    with pytest.raises(anthropic.APIStatusError):
        client.messages.create(model="claude-3-5-haiku", max_tokens=100, messages=MESSAGES,
                               tokenledger={"request_id": "e1"})  # fmt: skip
    assert Reservation.objects.get(request_id="e1").status == "released"
    assert not UsageEvent.objects.exists()
    assert wallet_of(account) == (Decimal(10000), Decimal(0))


def test_a_denial_makes_no_provider_call(ledger: TokenLedger, account: Any, provider: FakeProvider) -> None:
    client = wrap_anthropic(_client(provider), ledger)
    with pytest.raises(Denied):
        client.messages.create(model="claude-3-5-haiku", max_tokens=10_000_000, messages=MESSAGES)
    assert provider.calls == []
    assert wallet_of(account) == (Decimal(10000), Decimal(0))


def test_a_provider_503_then_success_is_charged_once(ledger: TokenLedger, account: Any, provider: FakeProvider) -> None:
    provider.failures = [503]
    client = wrap_anthropic(_client(provider, max_retries=2), ledger)
    client.messages.create(
        model="claude-3-5-haiku", max_tokens=100, messages=MESSAGES, tokenledger={"request_id": "m3"}
    )
    assert len(provider.calls) == 2
    event = _assert_message_recorded(account, "m3")
    assert UsageEvent.objects.count() == 1
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_async_client_streaming_and_not(async_ledger_factory: Any, account: Any, provider: FakeProvider) -> None:
    async def scenario() -> None:
        async with async_ledger_factory() as ledger:
            client = wrap_anthropic(_async_client(provider), ledger)
            await client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES,
                                         tokenledger={"request_id": "a1"})  # fmt: skip
            stream = await client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES,
                                                  stream=True, tokenledger={"request_id": "a2"})  # fmt: skip
            async with stream:
                async for _event in stream:
                    pass
            provider.failures = [500]
            with pytest.raises(anthropic.APIStatusError):
                await client.messages.create(model="claude-3-5-haiku", max_tokens=100, messages=MESSAGES,
                                             tokenledger={"request_id": "a3"})  # fmt: skip
            calls = len(provider.calls)
            with pytest.raises(Denied):
                await client.messages.create(model="claude-3-5-haiku", max_tokens=10_000_000, messages=MESSAGES)
            assert len(provider.calls) == calls

    asyncio.run(scenario())
    for request_id in ("a1", "a2"):
        _assert_message_recorded(account, request_id)
    assert Reservation.objects.get(request_id="a3").status == "released"
    total = sum(UsageEvent.objects.values_list("credits", flat=True))
    assert UsageEvent.objects.count() == 2
    assert wallet_of(account) == (Decimal(10000) - total, Decimal(0))


def test_the_stream_helper_is_metered_however_it_is_read(
    ledger: TokenLedger, account: Any, provider: FakeProvider, sent: list[dict[str, Any]]
) -> None:
    """`messages.stream(...)` reads the events itself: the call is authorized when its block opens and recorded
    from the message it accumulated, whether read as text, as events, or with get_final_message()."""
    client = wrap_anthropic(_client(provider), ledger)
    manager = client.messages.stream(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES,
                                     tokenledger={"request_id": "h1"})  # fmt: skip
    assert provider.calls == [] and not Reservation.objects.exists()  # nothing leaves before the block opens
    with manager as stream:
        assert Reservation.objects.get(request_id="h1").status == "active"
        assert "".join(stream.text_stream) == "Hello there"
    with client.messages.stream(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES,
                                tokenledger={"request_id": "h2"}) as stream:  # fmt: skip
        assert stream.get_final_message().usage.output_tokens == 400
    assert "tokenledger" not in provider.calls[0]["body"]
    first, second = _assert_message_recorded(account, "h1"), _assert_message_recorded(account, "h2")
    assert [e["provider_request_id"] for e in _recorded(sent)] == ["req_anthropic_1", "req_anthropic_2"]
    assert wallet_of(account) == (Decimal(10000) - first.credits - second.credits, Decimal(0))


def test_the_stream_helper_denied_or_failing_sends_nothing_and_keeps_nothing(
    ledger: TokenLedger, account: Any, provider: FakeProvider
) -> None:
    client = wrap_anthropic(_client(provider), ledger)
    with pytest.raises(Denied), client.messages.stream(model="claude-3-5-haiku", max_tokens=10_000_000,
                                                       messages=MESSAGES):  # fmt: skip
        pass
    assert provider.calls == []
    provider.failures = [529]
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(
            model="claude-3-5-haiku", max_tokens=100, messages=MESSAGES, tokenledger={"request_id": "h3"}
        ),
    ):
        pass
    assert Reservation.objects.get(request_id="h3").status == "released"
    assert not UsageEvent.objects.exists()
    assert wallet_of(account) == (Decimal(10000), Decimal(0))


def test_the_async_stream_helper_is_metered(async_ledger_factory: Any, account: Any, provider: FakeProvider) -> None:
    async def scenario() -> None:
        async with async_ledger_factory() as ledger:
            client = wrap_anthropic(_async_client(provider), ledger)
            async with client.messages.stream(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES,
                                              tokenledger={"request_id": "ah1"}) as stream:  # fmt: skip
                assert [text async for text in stream.text_stream] == ["Hello there"]

    asyncio.run(scenario())
    event = _assert_message_recorded(account, "ah1")
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))
