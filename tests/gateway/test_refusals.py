"""Calls the gateway refuses or that fail upstream: denials in the provider's own error format that never reach the
provider, the rate limit, provider errors and clients that go away, each leaving the balance exact."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from core.decimals import decimal_string
from gateway.models import Upstream
from pricing.models import AIModel
from pricing.services import model_create, model_price_set
from tests.factories import AccountFactory
from tests.gateway.conftest import eventually, gateway_settled, wallet_of
from tests.gateway.fake_upstream import FakeUpstream
from usage.estimate import tokens_for
from usage.models import Reservation, UsageEvent
from usage.throttling import rate_limit_take

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES: Any = [{"role": "user", "content": "Say hello " * 20}]


def _released(account: Any) -> bool:
    reservation = Reservation.objects.filter(account=account).first()
    return reservation is not None and reservation.status == Reservation.Status.RELEASED


def test_a_call_the_credits_do_not_cover_is_402_with_cheaper_models_and_never_forwarded(
    gateway_url: str, upstreams: Any, fake: FakeUpstream
) -> None:
    poor: Any = AccountFactory.create(plan="jive", credits="200")  # 100,000 output tokens of gpt-4o-mini cost 600
    cheap = model_create(model_id="embed-cheap", display_name="Cheap embeddings", provider="openai",
                         allowed_tiers=["jive"], mode="embedding")  # fmt: skip
    model_price_set(model=cheap, input_per_million="0.01", output_per_million="0",
                    effective_from=datetime.now(UTC) - timedelta(days=1), reason="always fits, serves no chat")  # fmt: skip
    with (
        openai.OpenAI(api_key=poor.api_key, base_url=f"{gateway_url}/gateway/openai/v1", max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as denied,
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100_000)

    assert denied.value.status_code == 402
    error = denied.value.body
    assert isinstance(error, dict)
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_credits")
    assert "qwen-3-32b" in [a["model_id"] for a in error["alternatives"]]
    for alternative in error["alternatives"]:  # amounts as the API writes them: plain, no trailing zeros
        for amount in (alternative["credits"], alternative["charge_usd"]):
            assert amount == decimal_string(Decimal(amount)) and "E" not in amount
    modes = dict(AIModel.objects.filter(model_id__in=[a["model_id"] for a in error["alternatives"]])
                 .values_list("model_id", "mode"))  # fmt: skip
    assert set(modes.values()) == {"chat"} and "embed-cheap" not in modes, modes
    assert fake.received == []
    assert wallet_of(poor) == (Decimal(200), Decimal(0))


def test_n_answers_the_credits_cover_only_once_are_402_and_never_forwarded(
    gateway_url: str, upstreams: Any, fake: FakeUpstream
) -> None:
    """One answer of 10,000 output tokens of gpt-4o-mini holds 60 credits and fits in 200; ten such answers (`n`),
    each generated and billed by the provider, hold 600 and do not."""
    poor: Any = AccountFactory.create(plan="jive", credits="200")
    with openai.OpenAI(api_key=poor.api_key, base_url=f"{gateway_url}/gateway/openai/v1", max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as denied:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10_000, n=10)
        assert denied.value.status_code == 402
        assert fake.received == []
        assert wallet_of(poor) == (Decimal(200), Decimal(0))

        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10_000)
    assert len(fake.received) == 1


def test_an_anthropic_denial_is_a_billing_error(gateway_url: str, upstreams: Any, fake: FakeUpstream) -> None:
    poor: Any = AccountFactory.create(plan="jive", credits="1")
    with anthropic.Anthropic(api_key=poor.api_key, base_url=f"{gateway_url}/gateway/anthropic",
                             max_retries=0) as client, pytest.raises(anthropic.APIStatusError) as denied:  # fmt: skip
        client.messages.create(model="claude-3-5-haiku", max_tokens=4096, messages=MESSAGES)

    body = denied.value.body
    assert denied.value.status_code == 402 and isinstance(body, dict) and body["type"] == "error"
    assert (body["error"]["type"], body["error"]["code"]) == ("billing_error", "insufficient_credits")
    assert "credits" in body["error"]["message"]
    assert fake.received == []


def test_the_plans_rate_limit_is_429_with_retry_after(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    rate_limit_take(key=f"ratelimit:plan:{account.pk}", limit=500, period_seconds=3600, cost=500)  # jive: 500/h

    with pytest.raises(openai.RateLimitError) as limited:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10)

    assert limited.value.code == "rate_limited"
    assert int(limited.value.response.headers["retry-after"]) > 0
    assert fake.received == [] and not Reservation.objects.exists()


def test_a_provider_error_is_passed_on_and_the_hold_released(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    fake.provider.failures = [500]
    with pytest.raises(openai.InternalServerError) as failed:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10)

    assert failed.value.body == {"type": "server_error", "message": "fake 500"}  # the provider's own error
    assert _released(account)
    assert wallet_of(account) == (Decimal(10000), Decimal(0))
    assert not UsageEvent.objects.exists()


def test_a_redirect_is_not_followed_but_passed_on_and_the_hold_released(
    gateway_url: str, account: Any, fake: FakeUpstream
) -> None:
    """A redirect is not an answer: the call is not sent again elsewhere (with the operator's key) and nothing is
    charged for it."""
    fake.redirect_to = f"{gateway_url}/gateway/openai/v1/elsewhere"
    answer = httpx.post(f"{gateway_url}/gateway/openai/v1/chat/completions", timeout=30,
                        headers={"Authorization": f"Bearer {account.api_key}"},
                        json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 10})  # fmt: skip

    assert (answer.status_code, answer.json()) == (307, {"moved": True})
    assert len(fake.received) == 1
    assert eventually(lambda: _released(account))
    assert wallet_of(account) == (Decimal(10000), Decimal(0))
    assert not UsageEvent.objects.exists()


def test_a_refused_upstream_key_is_the_gateways_fault_not_the_clients(
    anthropic_client: anthropic.Anthropic, account: Any, fake: FakeUpstream
) -> None:
    fake.provider.failures = [401]
    with pytest.raises(anthropic.APIStatusError) as failed:
        anthropic_client.messages.create(model="claude-3-5-haiku", max_tokens=10, messages=MESSAGES)

    assert failed.value.status_code == 502
    assert failed.value.body["error"]["code"] == "upstream_auth_failed"  # type: ignore[index]
    assert _released(account)


def test_an_unreachable_upstream_is_retried_then_502_and_released(
    openai_client: openai.OpenAI, account: Any, upstreams: dict[str, Upstream]
) -> None:
    Upstream.objects.filter(name="openai").update(base_url="http://127.0.0.1:9/v1", connect_retries=2)
    with pytest.raises(openai.APIStatusError) as failed:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10)

    assert (failed.value.status_code, failed.value.code) == (502, "upstream_unreachable")
    assert _released(account)
    assert wallet_of(account) == (Decimal(10000), Decimal(0))
    # answered under the id the call was authorized (and its hold released) under
    assert (
        failed.value.response.headers["tokenledger-request-id"] == Reservation.objects.get(account=account).request_id
    )


def test_a_call_refused_before_it_was_authorized_answers_the_clients_own_request_id(
    gateway_url: str, upstreams: Any, fake: FakeUpstream
) -> None:
    poor: Any = AccountFactory.create(plan="jive", credits="1")
    with openai.OpenAI(api_key=poor.api_key, base_url=f"{gateway_url}/gateway/openai/v1", max_retries=0) as client:
        for headers, expected in (({"TokenLedger-Request-Id": "order-9"}, "order-9"), ({}, None)):
            with pytest.raises(openai.APIStatusError) as denied:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100_000,
                                               extra_headers=headers)  # fmt: skip
            assert denied.value.status_code == 402
            assert denied.value.response.headers.get("tokenledger-request-id") == expected
    assert fake.received == []


def test_a_client_that_leaves_before_any_output_has_its_hold_released(
    gateway_url: str, account: Any, fake: FakeUpstream
) -> None:
    fake.answer_delay = 2.0
    with openai.OpenAI(api_key=account.api_key, base_url=f"{gateway_url}/gateway/openai/v1", max_retries=0,
                       timeout=0.5) as client, pytest.raises(openai.APITimeoutError):  # fmt: skip
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10, stream=True)

    assert eventually(lambda: _released(account))
    assert wallet_of(account) == (Decimal(10000), Decimal(0))
    assert not UsageEvent.objects.exists()


def test_a_client_that_leaves_mid_stream_is_charged_for_what_the_provider_generated(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    fake.event_delay = 0.3
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=500,
                                                   stream=True)  # fmt: skip
    first = next(iter(stream))
    stream.close()

    assert first.choices[0].delta.content == "Hello"
    event = eventually(lambda: UsageEvent.objects.filter(account=account).first())
    assert event is not None
    # the provider went on to the end: the whole call's usage, as it reported it
    assert (event.input_tokens, event.output_tokens, event.metadata["usage"]) == (1200, 300, "reported")
    assert eventually(lambda: fake.streams_finished == 1)
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_stream_the_provider_breaks_off_is_charged_for_the_text_produced(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    fake.break_after_events = 1
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=500,
                                                   stream=True)  # fmt: skip
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError):  # the client sees the break, as it would from the provider
        received.extend(stream)

    assert [chunk.choices[0].delta.content for chunk in received] == ["Hello"]
    event = eventually(lambda: UsageEvent.objects.filter(account=account).first())
    assert event is not None
    assert event.metadata["usage"] == "estimated"
    assert event.input_tokens == tokens_for("user\n" + "Say hello " * 20, provider="openai")
    assert event.output_tokens == tokens_for("Hello", provider="openai")
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_retried_request_id_is_never_forwarded_nor_charged_twice(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    headers = {"TokenLedger-Request-Id": "order-7-summary"}
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10, extra_headers=headers)
    gateway_settled()
    with pytest.raises(openai.ConflictError) as again:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10,
                                              extra_headers=headers)  # fmt: skip

    assert again.value.code == "already_recorded"
    assert len(fake.received) == 1
    event = UsageEvent.objects.get(account=account)
    assert event.request_id == "order-7-summary"
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_request_id_whose_call_is_in_flight_is_refused_not_forwarded_again(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    headers = {"TokenLedger-Request-Id": "order-8-summary"}
    fake.answer_delay = 2.0  # the first call is still with the provider when the second arrives
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(openai_client.chat.completions.create, model="gpt-4o-mini", messages=MESSAGES,
                            max_tokens=10, extra_headers=headers)  # fmt: skip
        assert eventually(lambda: len(fake.received) == 1)
        with pytest.raises(openai.ConflictError) as again:
            openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10,
                                                  extra_headers=headers)  # fmt: skip
        first.result()

    assert again.value.code == "request_in_progress"
    assert len(fake.received) == 1
    gateway_settled()
    event = UsageEvent.objects.get(account=account)
    assert wallet_of(account) == (Decimal(10000) - event.credits, Decimal(0))


def test_a_provider_slower_than_the_upstreams_timeout_is_504_and_released(
    openai_client: openai.OpenAI, account: Any, fake: FakeUpstream
) -> None:
    Upstream.objects.filter(name="openai").update(timeout_seconds=1)
    fake.answer_delay = 3.0
    with pytest.raises(openai.APIStatusError) as failed:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10)

    assert (failed.value.status_code, failed.value.code) == (504, "upstream_timeout")
    assert _released(account)
    assert wallet_of(account) == (Decimal(10000), Decimal(0))
