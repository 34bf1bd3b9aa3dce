"""The real `openai` client pointed at the gateway: chat completions, the Responses API and embeddings, streamed
and not; what it used is recorded exactly and the balance moves by what the events say."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import openai
import pytest
from django.test import Client

from gateway.models import Upstream
from tests.gateway.conftest import OPENAI_UPSTREAM_KEY, eventually, gateway_settled, wallet_of
from tests.gateway.fake_upstream import FakeUpstream
from usage.estimate import tokens_for
from usage.models import Reservation, UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES: Any = [{"role": "user", "content": "Say hello " * 20}]
# gpt-4o-mini: 200 uncached input x $0.15 + 1,000 cached x $0.075 + 300 output (100 reasoning) x $0.60 per 1M
# = $0.000285, at 10,000 credits per USD
CHAT_CREDITS = Decimal("2.85")


def _only_event(account: Any) -> UsageEvent:
    gateway_settled()
    events = list(UsageEvent.objects.filter(account=account))
    assert len(events) == 1
    return events[0]


def test_chat_completion_is_answered_as_the_provider_wrote_it_and_recorded(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=500, user="end-user-7"
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there"
    assert completion.usage is not None and completion.usage.prompt_tokens == 1200

    event = _only_event(account)
    assert raw.headers["tokenledger-request-id"] == event.request_id
    assert (event.model_id, event.input_tokens, event.cached_input_tokens, event.output_tokens,
            event.reasoning_tokens) == ("gpt-4o-mini", 1200, 1000, 300, 100)  # fmt: skip
    assert event.provider_request_id == "req_openai_1"
    assert event.user == "end-user-7"
    assert event.api_key is not None and account.api_key.startswith(f"tl_{event.api_key.prefix}_")  # spend by key
    assert event.credits == CHAT_CREDITS
    assert wallet_of(account) == (Decimal("10000") - CHAT_CREDITS, Decimal(0))
    assert Reservation.objects.get(request_id=event.request_id).status == Reservation.Status.SETTLED


def test_our_key_never_reaches_the_provider_and_the_operators_key_does(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)

    (received,) = fake.received
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"
    assert all(account.api_key not in value for value in received.headers.values())
    assert received.body["messages"] == MESSAGES and received.body["max_tokens"] == 50


def test_a_cookie_the_provider_sets_goes_out_with_no_later_call(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    fake.set_cookie = "__cf_bm=one-customers-session; Path=/; HttpOnly"
    for _ in range(2):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    assert len(fake.received) == 2 and all("cookie" not in r.headers for r in fake.received)


def test_a_stream_passes_through_and_its_usage_is_recorded_exactly(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=500,
                                                   stream=True)  # fmt: skip
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
    # the gateway asked the provider for the usage chunk; the client did not, so it does not see it
    assert fake.received[0].body["stream_options"] == {"include_usage": True}
    assert all(chunk.usage is None for chunk in chunks)
    event = _only_event(account)
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens, event.reasoning_tokens) == (
        1200, 1000, 300, 100,
    )  # fmt: skip
    assert event.provider_request_id == "req_openai_1"
    assert wallet_of(account) == (Decimal("10000") - CHAT_CREDITS, Decimal(0))


def test_a_stream_that_asked_for_usage_gets_its_usage_chunk(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=500, stream=True, stream_options={"include_usage": True}
    )
    usages = [chunk.usage for chunk in stream if chunk.usage is not None]

    assert [u.completion_tokens for u in usages] == [300]
    assert _only_event(account).output_tokens == 300


def test_responses_api_streamed_and_not(openai_client: openai.OpenAI, account: Any, fake: FakeUpstream) -> None:
    response = openai_client.responses.create(model="gpt-4o-mini", input="Say hello", max_output_tokens=400)
    assert response.output_text == "Hello there"
    events = list(openai_client.responses.create(model="gpt-4o-mini", input="Say hello", max_output_tokens=400,
                                                 stream=True))  # fmt: skip
    assert events[-1].type == "response.completed"

    gateway_settled()
    recorded = list(UsageEvent.objects.filter(account=account).order_by("id"))
    assert [(e.input_tokens, e.cached_input_tokens, e.output_tokens, e.reasoning_tokens) for e in recorded] == [
        (800, 200, 250, 50), (800, 200, 250, 50),
    ]  # fmt: skip
    assert [e.provider_request_id for e in recorded] == ["req_openai_1", "req_openai_2"]
    assert [e.metadata["gateway"] for e in recorded] == ["responses", "responses"]
    spent = sum((e.credits for e in recorded), Decimal(0))
    assert wallet_of(account) == (Decimal("10000") - spent, Decimal(0))


def test_embeddings_are_recorded_as_input_only(openai_client: openai.OpenAI, account: Any, fake: FakeUpstream) -> None:
    from pricing.services import model_create, model_price_set

    model = model_create(model_id="text-embedding-3-small", display_name="Embedding 3 small", provider="openai",
                         mode="embedding")  # fmt: skip
    model_price_set(model=model, input_per_million="0.02", output_per_million="0", reason="list price")

    answer = openai_client.embeddings.create(model="text-embedding-3-small", input=["hello world"])

    assert answer.data[0].embedding == [0.1, 0.2, 0.3]
    event = _only_event(account)
    assert (event.model_id, event.input_tokens, event.output_tokens) == ("text-embedding-3-small", 8, 0)
    assert wallet_of(account) == (Decimal("10000") - event.credits, Decimal(0))


def test_the_catalog_output_limit_is_held_when_the_request_sets_none(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    from pricing.models import AIModel
    from pricing.services import model_update
    from usage.estimate import tokens_for

    model_update(model=AIModel.objects.get(model_id="gpt-4o-mini"), max_output_tokens=16_384)
    fake.event_delay = 0.3
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))  # the call is under way: its worst case is held

    held = Reservation.objects.get(account=account).held_credits
    # the input as the gateway estimates it: every text of the messages (the role too) by characters per token
    input_tokens = tokens_for("user\n" + "Say hello " * 20, provider="openai")
    # the worst case: the estimated input at the input price and 16,384 output tokens at $0.60 per 1M
    assert held == (Decimal(input_tokens) * Decimal("0.15") + 16_384 * Decimal("0.60")) / 100
    assert wallet_of(account)[1] == held
    list(stream)
    assert wallet_of(account) == (Decimal("10000") - CHAT_CREDITS, Decimal(0))


def test_a_call_asking_for_n_answers_holds_n_times_the_output_bound(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    fake.event_delay = 0.3
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=1000, n=3,
                                                   stream=True)  # fmt: skip
    next(iter(stream))  # under way: its worst case is held

    held = Reservation.objects.get(account=account).held_credits
    input_tokens = tokens_for("user\n" + "Say hello " * 20, provider="openai")
    # the input once, and three answers of 1,000 output tokens each at $0.60 per 1M (10,000 credits per USD)
    assert held == (Decimal(input_tokens) * Decimal("0.15") + 3 * 1000 * Decimal("0.60")) / 100
    list(stream)


def test_n_out_of_range_is_refused_before_anything_is_held(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    for n in (0, 129, "2", 2.5):
        with pytest.raises(openai.BadRequestError) as refused:
            openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10, n=n)  # type: ignore[arg-type]
        assert refused.value.code == "n_invalid"
    assert fake.received == [] and not Reservation.objects.exists()


def test_a_request_without_an_output_limit_anywhere_is_refused(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert refused.value.code == "max_tokens_required"
    assert fake.received == []


def test_models_go_to_the_upstream_their_patterns_name(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream, upstreams: dict[str, Upstream]
) -> None:
    from gateway.services import upstream_save

    nowhere = upstream_save(upstream=Upstream(name="nowhere", kind="openai", base_url="http://127.0.0.1:9/v1",
                                              model_patterns="gpt-4o*", priority=1, connect_retries=0),
                            api_key="sk-other")  # fmt: skip
    with pytest.raises(openai.APIStatusError) as failed:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    assert failed.value.status_code == 502 and failed.value.code == "upstream_unreachable"
    nowhere.model_patterns = "gpt-5*"
    upstream_save(upstream=nowhere, api_key=None)

    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    assert len(fake.received) == 1
    assert eventually(lambda: UsageEvent.objects.filter(account=account).count() == 1)


def test_neither_keys_nor_prompts_are_logged(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    secret_prompt = "my card number is 4242 4242 4242 4242"
    caplog.set_level(logging.DEBUG)
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": secret_prompt}],
                                          max_tokens=5)  # fmt: skip
    fake.provider.failures = [500]
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": secret_prompt}],
                                              max_tokens=5)  # fmt: skip

    assert "gateway upstream openai answered 500" in caplog.text  # the gateway's own lines are captured
    for secret in (account.api_key, OPENAI_UPSTREAM_KEY, secret_prompt):
        assert secret not in caplog.text


def test_a_call_on_the_web_port_is_recorded_before_it_is_answered(account: Any, fake: FakeUpstream) -> None:
    """The web port (WSGI) serves the gateway's routes too; there a request's event loop ends with its answer, so the
    call is recorded before it is answered."""
    answer = Client().post("/gateway/openai/v1/chat/completions", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {account.api_key}",
                           data={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 5})  # fmt: skip
    assert answer.status_code == 200, answer.content
    event = UsageEvent.objects.get(account=account)  # no waiting: it was recorded before the answer
    assert Reservation.objects.get(request_id=event.request_id).status == Reservation.Status.SETTLED


def test_a_stream_on_the_web_port_is_read_to_its_end_and_recorded_before_it_is_answered(
    account: Any, fake: FakeUpstream
) -> None:
    """There the view's event loop ends with the view: a stream is read whole inside it (it was cut after its first
    events, and only what they held was recorded)."""
    fake.event_delay = 0.1
    answer = Client().post("/gateway/openai/v1/chat/completions", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {account.api_key}",
                           data={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 500, "stream": True})  # fmt: skip

    assert answer.status_code == 200, answer.content
    assert b'"content": " there"' in answer.content and answer.content.endswith(b"data: [DONE]\n\n")
    event = UsageEvent.objects.get(account=account)  # no waiting: it was recorded before the answer
    assert (event.input_tokens, event.output_tokens, event.metadata["usage"]) == (1200, 300, "reported")
    assert Reservation.objects.get(request_id=event.request_id).status == Reservation.Status.SETTLED
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_stream_the_provider_breaks_off_on_the_web_port_is_502_and_charged_for_the_text_produced(
    account: Any, fake: FakeUpstream
) -> None:
    fake.break_after_events = 1
    answer = Client().post("/gateway/openai/v1/chat/completions", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {account.api_key}",
                           data={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 500, "stream": True})  # fmt: skip

    assert (answer.status_code, answer.json()["error"]["code"]) == (502, "upstream_unreachable")
    event = UsageEvent.objects.get(account=account)
    assert (event.output_tokens, event.metadata["usage"]) == (tokens_for("Hello", provider="openai"), "estimated")
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))
