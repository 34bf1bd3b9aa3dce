"""`wrap_openai`: the real `openai` client against the fake provider, metered by the live TokenLedger."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from tokenledger import Denied, TokenLedger, wrap_openai

from tests.sdk.conftest import wallet_of
from tests.sdk.fake_provider import FakeProvider
from usage.models import Reservation, UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello " * 20}]


def _client(provider: FakeProvider, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test", base_url="http://fake-openai.test/v1", max_retries=max_retries,
        http_client=httpx2.Client(transport=provider.transport()),
    )  # fmt: skip


def _async_client(provider: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-test", base_url="http://fake-openai.test/v1", max_retries=0,
        http_client=httpx2.AsyncClient(transport=provider.async_transport()),
    )  # fmt: skip


def _events_sent(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s["json"] for s in sent if s["path"] == "/api/usage/events"]


def _assert_chat_recorded(account: Any) -> UsageEvent:
    event = UsageEvent.objects.get(account=account)
    assert (event.model_id, event.model_requested) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens, event.reasoning_tokens) == (
        1200, 1000, 300, 100,
    )  # fmt: skip
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))
    assert Reservation.objects.get(account=account).status == "settled"
    return event


def test_chat_completion_is_authorized_then_recorded(ledger: TokenLedger, account: Any, provider: FakeProvider,
                                                     sent: list[dict[str, Any]]) -> None:  # fmt: skip
    client = wrap_openai(_client(provider), ledger, operation_type="chat", user="end-user-1")
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=400, tokenledger={"request_id": "c1"}
    )
    assert completion.choices[0].message.content == "Hello there"
    assert [s["path"] for s in sent] == ["/api/usage/authorize", "/api/usage/events"]
    asked = sent[0]["json"]
    assert (asked["request_id"], asked["model"], asked["max_output_tokens"]) == ("c1", "gpt-4o-mini", 400)
    assert asked["input_tokens"] > 0
    event = _assert_chat_recorded(account)
    assert (event.request_id, event.operation_type, event.user) == ("c1", "chat", "end-user-1")
    recorded = _events_sent(sent)[0]
    assert (recorded["provider_request_id"], recorded["service_tier"]) == ("req_openai_1", "default")
    assert "tokenledger" not in provider.calls[0]["body"]  # our options never reach the provider


def test_a_call_for_n_answers_is_authorized_for_n_times_its_output(
    ledger: TokenLedger, account: Any, provider: FakeProvider, sent: list[dict[str, Any]]
) -> None:
    client = wrap_openai(_client(provider), ledger)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=400, n=3)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=400, n=3,
                                   tokenledger={"max_output_tokens": 500})  # fmt: skip
    asked = [s["json"]["max_output_tokens"] for s in sent if s["path"] == "/api/usage/authorize"]
    assert asked == [1200, 500]  # each answer is generated and billed; an explicit bound is the whole call's
    assert provider.calls[0]["body"]["n"] == 3


def test_chat_stream_asks_for_usage_and_records_it(ledger: TokenLedger, account: Any, provider: FakeProvider,
                                                   sent: list[dict[str, Any]]) -> None:  # fmt: skip
    client = wrap_openai(_client(provider), ledger)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert not UsageEvent.objects.exists()  # nothing is recorded before the stream is read
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello there"
    assert provider.calls[0]["body"]["stream_options"] == {"include_usage": True}
    _assert_chat_recorded(account)
    assert _events_sent(sent)[0]["provider_request_id"] == "req_openai_1"


def test_responses_api_with_and_without_streaming(ledger: TokenLedger, account: Any, provider: FakeProvider) -> None:
    client = wrap_openai(_client(provider), ledger)
    response = client.responses.create(model="gpt-4o-mini", input="Say hello", max_output_tokens=300,
                                       tokenledger={"request_id": "r1"})  # fmt: skip
    assert response.output_text == "Hello there"
    with client.responses.create(model="gpt-4o-mini", input="Say hello", stream=True,
                                 tokenledger={"request_id": "r2"}) as stream:  # fmt: skip
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.completed"
    for request_id in ("r1", "r2"):
        event = UsageEvent.objects.get(request_id=request_id)
        assert (event.input_tokens, event.cached_input_tokens, event.output_tokens, event.reasoning_tokens) == (
            800, 200, 250, 50,
        )  # fmt: skip
    total = sum(UsageEvent.objects.values_list("credits", flat=True))
    assert wallet_of(account) == (Decimal(10000) - total, Decimal(0))


def test_a_provider_error_releases_the_hold_and_records_nothing(ledger: TokenLedger, account: Any,
                                                                provider: FakeProvider) -> None:  # fmt: skip
    provider.failures = [500]
    client = wrap_openai(_client(provider), ledger)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tokenledger={"request_id": "e1"})
    assert Reservation.objects.get(request_id="e1").status == "released"
    assert not UsageEvent.objects.exists()
    assert wallet_of(account) == (Decimal(10000), Decimal(0))


def test_a_denial_makes_no_provider_call(ledger: TokenLedger, account: Any, provider: FakeProvider) -> None:
    client = wrap_openai(_client(provider), ledger)
    with pytest.raises(Denied) as denied:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=50_000_000)
    assert denied.value.reason == "insufficient_credits"
    assert provider.calls == []
    assert wallet_of(account) == (Decimal(10000), Decimal(0))


def test_a_provider_503_then_success_is_charged_once(ledger: TokenLedger, account: Any, provider: FakeProvider) -> None:
    provider.failures = [503]
    client = wrap_openai(_client(provider, max_retries=2), ledger)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(provider.calls) == 2  # the openai client retried; the wrapper authorized and recorded once
    _assert_chat_recorded(account)


def test_a_stream_closed_early_records_what_was_seen(ledger: TokenLedger, account: Any, provider: FakeProvider) -> None:
    client = wrap_openai(_client(provider), ledger)
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                        tokenledger={"request_id": "s1"}) as stream:  # fmt: skip
        next(iter(stream))  # the reader stops after the first chunk: no usage came
    event = UsageEvent.objects.get(request_id="s1")
    assert event.metadata == {"tokenledger_usage_estimated": True}
    assert event.output_tokens >= 1
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_async_client_streaming_and_not(async_ledger_factory: Any, account: Any, provider: FakeProvider) -> None:
    async def scenario() -> None:
        async with async_ledger_factory() as ledger:
            client = wrap_openai(_async_client(provider), ledger)
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                 tokenledger={"request_id": "a1"})  # fmt: skip
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                          tokenledger={"request_id": "a2"})  # fmt: skip
            async for _chunk in stream:
                pass
            await client.responses.create(model="gpt-4o-mini", input="hi", tokenledger={"request_id": "a3"})
            provider.failures = [500]
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                     tokenledger={"request_id": "a4"})  # fmt: skip
            calls = len(provider.calls)
            with pytest.raises(Denied):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                     max_completion_tokens=50_000_000)  # fmt: skip
            assert len(provider.calls) == calls

    asyncio.run(scenario())
    assert sorted(UsageEvent.objects.values_list("request_id", flat=True)) == ["a1", "a2", "a3"]
    assert UsageEvent.objects.get(request_id="a2").input_tokens == 1200
    assert Reservation.objects.get(request_id="a4").status == "released"
    total = sum(UsageEvent.objects.values_list("credits", flat=True))
    assert wallet_of(account) == (Decimal(10000) - total, Decimal(0))


def test_a_sync_client_needs_a_sync_ledger(async_ledger_factory: Any, provider: FakeProvider) -> None:
    with pytest.raises(TypeError):
        wrap_openai(_client(provider), async_ledger_factory())


@pytest.fixture
def embedding_model(catalog: None) -> None:
    """text-embedding-3-small at OpenAI's list price, $0.02 per million input tokens."""
    from datetime import UTC, datetime

    from pricing.models import AIModel
    from pricing.services import model_create, model_price_set

    if not AIModel.objects.filter(model_id="text-embedding-3-small").exists():
        model_create(model_id="text-embedding-3-small", display_name="Embedding 3 small", provider="openai",
                     mode="embedding")  # fmt: skip
    model_price_set(
        model=AIModel.objects.get(model_id="text-embedding-3-small"), input_per_million="0.02",
        output_per_million="0", effective_from=datetime(2024, 1, 2, tzinfo=UTC), reason="list price",
    )  # fmt: skip


def test_embeddings_hold_the_input_only_and_record_the_reported_count(
    embedding_model: None, ledger: TokenLedger, account: Any, provider: FakeProvider, sent: list[dict[str, Any]]
) -> None:
    client = wrap_openai(_client(provider), ledger)
    client.embeddings.create(model="text-embedding-3-small", input=["first text", "second text"],
                             tokenledger={"request_id": "emb1"})  # fmt: skip
    client.embeddings.create(model="text-embedding-3-small", input=[101, 102, 103, 104, 105],
                             tokenledger={"request_id": "emb2"})  # fmt: skip
    asked = [s["json"] for s in sent if s["path"] == "/api/usage/authorize"]
    assert [a["max_output_tokens"] for a in asked] == [0, 0]  # an embedding holds no output
    assert asked[1]["input_tokens"] == 5  # token ids are counted, not estimated
    first, second = UsageEvent.objects.get(request_id="emb1"), UsageEvent.objects.get(request_id="emb2")
    assert (first.input_tokens, first.output_tokens, second.input_tokens) == (14, 0, 5)
    assert _events_sent(sent)[0]["provider_request_id"] == "req_openai_1"
    assert wallet_of(account) == (Decimal(10000) - first.credits - second.credits, Decimal(0))
