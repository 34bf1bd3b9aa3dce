"""The real `anthropic` client pointed at the gateway: messages streamed and not, with prompt-cache reads and writes
recorded exactly, the key sent as `x-api-key`, and a server key acting for a customer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from billing.services.customers import customer_upsert
from billing.services.server_keys import server_key_issue, server_key_revoke
from billing.services.wallet import wallet_grant
from tests.gateway.conftest import ANTHROPIC_UPSTREAM_KEY, eventually, gateway_settled, wallet_of
from tests.gateway.fake_upstream import FakeUpstream
from usage.estimate import tokens_for
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES: Any = [{"role": "user", "content": "Say hello " * 20}]
# claude-3-5-haiku: 100 uncached x $0.80 + 2,000 cache reads x $0.08 + 300 5-minute writes x $1.00
# + 200 1-hour writes x $1.60 + 400 output x $4.00, per 1M = $0.00246, at 10,000 credits per USD
MESSAGE_CREDITS = Decimal("24.6")


def _assert_recorded(event: UsageEvent) -> None:
    assert (event.model_id, event.input_tokens, event.cached_input_tokens, event.cache_write_input_tokens,
            event.cache_write_1h_input_tokens, event.output_tokens) == ("claude-3-5-haiku", 2600, 2000, 300, 200, 400)  # fmt: skip
    assert event.credits == MESSAGE_CREDITS


def test_a_message_is_answered_and_recorded_with_its_cache_reads_and_writes(
    anthropic_client: anthropic.Anthropic, account: Any, fake: FakeUpstream
) -> None:
    message = anthropic_client.messages.create(model="claude-3-5-haiku", max_tokens=1000, system="Be brief.",
                                               messages=MESSAGES)  # fmt: skip

    assert message.content[0].text == "Hello there"  # type: ignore[union-attr]
    gateway_settled()
    event = UsageEvent.objects.get(account=account)
    _assert_recorded(event)
    assert event.provider_request_id == "req_anthropic_1"
    assert wallet_of(account) == (Decimal("10000") - MESSAGE_CREDITS, Decimal(0))
    (received,) = fake.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY
    assert "authorization" not in received.headers
    assert received.headers["anthropic-version"] == anthropic_client.default_headers["anthropic-version"]


def test_a_streamed_message_is_recorded_exactly(
    anthropic_client: anthropic.Anthropic, account: Any, fake: FakeUpstream
) -> None:
    with anthropic_client.messages.stream(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Hello there" and final.usage.output_tokens == 400
    _assert_recorded(UsageEvent.objects.get(account=account))
    assert wallet_of(account) == (Decimal("10000") - MESSAGE_CREDITS, Decimal(0))


def test_a_server_key_acts_for_the_customer_it_names(gateway_url: str, account: Any, fake: FakeUpstream) -> None:
    customer, _ = customer_upsert(external_id="shop-42", fields={"name": "Shop 42", "plan": "jive"})
    wallet_grant(account=customer, credits=Decimal(500), reason="test")
    _, server_key = server_key_issue(name="backend", scopes=["usage"])
    with anthropic.Anthropic(api_key=server_key, base_url=f"{gateway_url}/gateway/anthropic", max_retries=0,
                             default_headers={"TokenLedger-Customer": "shop-42"}) as client:  # fmt: skip
        client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES)
    with anthropic.Anthropic(api_key=server_key, base_url=f"{gateway_url}/gateway/anthropic", max_retries=0,
                             default_headers={"TokenLedger-Customer": "nobody"}) as client, pytest.raises(anthropic.NotFoundError) as unknown:  # fmt: skip
        client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES)

    assert unknown.value.body["error"]["code"] == "customer_not_found"  # type: ignore[index]
    gateway_settled()
    event = UsageEvent.objects.get()
    assert event.account == customer
    assert event.api_key is None  # a server key's call: no account key to spend by
    assert wallet_of(customer) == (Decimal(500) - MESSAGE_CREDITS, Decimal(0))
    assert all(server_key not in v for r in fake.received for v in r.headers.values())


def test_a_revoked_server_key_is_refused_from_the_next_call(gateway_url: str, account: Any, fake: FakeUpstream) -> None:
    customer, _ = customer_upsert(external_id="shop-7", fields={"name": "Shop 7", "plan": "jive"})
    wallet_grant(account=customer, credits=Decimal(500), reason="test")
    key, server_key = server_key_issue(name="backend", scopes=["usage"])
    with anthropic.Anthropic(api_key=server_key, base_url=f"{gateway_url}/gateway/anthropic", max_retries=0,
                             default_headers={"TokenLedger-Customer": "shop-7"}) as client:  # fmt: skip
        client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES)  # the key is cached now
        server_key_revoke(key=key)
        with pytest.raises(anthropic.AuthenticationError) as refused:
            client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES)

    assert refused.value.body["error"]["code"] == "invalid_api_key"  # type: ignore[index]
    assert len(fake.received) == 1


@pytest.mark.parametrize(("events_sent", "text"), [(3, "Hello there"), (1, "")])
def test_a_stream_broken_off_before_its_final_count_keeps_its_input_and_counts_the_text_produced(
    anthropic_client: anthropic.Anthropic, account: Any, fake: FakeUpstream, events_sent: int, text: str
) -> None:
    """message_start counts the input and one output token; the final output count comes in message_delta. A stream
    broken off between them is charged for its input as the provider counted it and for the text produced (never
    less than the one token counted)."""
    fake.break_after_events = events_sent
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIConnectionError),  # the client sees the break, as it would from the provider
        anthropic_client.messages.stream(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES) as stream,
    ):
        received.extend(stream.text_stream)
    assert "".join(received) == text

    event = eventually(lambda: UsageEvent.objects.filter(account=account).first())
    assert event is not None and event.metadata["usage"] == "estimated"
    assert (event.input_tokens, event.cached_input_tokens, event.cache_write_input_tokens,
            event.cache_write_1h_input_tokens) == (2600, 2000, 300, 200)  # fmt: skip
    assert event.output_tokens == max(1, tokens_for(text, provider="anthropic"))
    assert wallet_of(account) == (Decimal("10000") - event.credits, Decimal(0))


def test_a_header_the_client_sent_in_utf8_reaches_the_provider_as_it_was_sent(
    gateway_url: str, account: Any, fake: FakeUpstream
) -> None:
    body = b'{"model": "claude-3-5-haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
    headers = [("x-api-key", account.api_key.encode()), ("anthropic-beta", "béta-2026".encode())]
    response = httpx.post(f"{gateway_url}/gateway/anthropic/v1/messages", content=body, headers=headers, timeout=30)
    assert response.status_code == 200
    (received,) = fake.received
    assert received.headers["anthropic-beta"] == "béta-2026"  # not "bÃ©ta-2026"
