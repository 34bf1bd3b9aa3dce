"""The SDK's client against a live TokenLedger: typed results, typed errors, denials, retries that charge once."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tokenledger import (
    AlreadyRecorded,
    AuthenticationError,
    Denied,
    IdempotencyConflict,
    NotFoundError,
    RejectedEvent,
    ServerError,
    TokenLedger,
)

from tests.sdk.conftest import FAST, wallet_of
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_authorize_record_and_read_back(ledger: TokenLedger, account: Any) -> None:
    authorization = ledger.authorize(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500, request_id="a1")
    assert (authorization.request_id, authorization.held_credits) == ("a1", Decimal("1.5"))
    assert ledger.reservation("a1").status == "active"
    assert ledger.balance().held_credits == Decimal("1.5")

    result = ledger.record(request_id="a1", model="qwen-3-32b", input_tokens=1000, output_tokens=100)
    assert (result.status, result.credits, result.over_reservation) == ("recorded", Decimal("1.1"), False)
    assert ledger.reservation("a1").status == "settled"
    balance = ledger.balance()
    assert (balance.credits, balance.held_credits) == (Decimal("9998.9"), Decimal(0))
    assert wallet_of(account) == (Decimal("9998.9"), Decimal(0))

    again = ledger.record(request_id="a1", model="qwen-3-32b", input_tokens=1000, output_tokens=100)
    assert (again.status, again.credits) == ("duplicate", Decimal("1.1"))
    stats = ledger.stats()
    assert stats.total_events == 1 and stats.total_tokens == 1100
    assert ledger.usage().plan == "jive"


def test_release_frees_the_hold_and_typed_conflicts(ledger: TokenLedger, account: Any) -> None:
    ledger.authorize(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500, request_id="r1")
    release = ledger.release("r1")
    assert (release.status, release.released_credits) == ("released", Decimal("1.5"))
    assert wallet_of(account) == (Decimal(10000), Decimal(0))
    with pytest.raises(IdempotencyConflict) as conflict:
        ledger.authorize(model="qwen-3-32b", input_tokens=999, max_output_tokens=500, request_id="r1")
    assert (conflict.value.status_code, conflict.value.code) == (409, "idempotency_conflict")
    ledger.record(request_id="done", model="qwen-3-32b", input_tokens=10, output_tokens=10)
    with pytest.raises(AlreadyRecorded):
        ledger.release("done")
    with pytest.raises(NotFoundError) as missing:
        ledger.reservation("never")
    assert missing.value.code == "not_found"


def test_a_denial_is_raised_with_its_reason_and_alternatives(live_server: Any, catalog: None) -> None:
    from tests.factories import AccountFactory

    poor: Any = AccountFactory.create(plan="jive", credits="20")
    with TokenLedger(poor.api_key, live_server.url) as ledger, pytest.raises(Denied) as denied:
        ledger.authorize(model="claude-3-5-haiku", input_tokens=10_000, max_output_tokens=4000, request_id="big")
    assert denied.value.reason == "insufficient_credits"
    assert denied.value.request_id == "big"
    assert denied.value.alternatives and [a.model_id for a in denied.value.alternatives] == ["qwen-3-32b"]
    assert wallet_of(poor) == (Decimal(20), Decimal(0))


def test_a_rejected_event_raises_with_its_code_and_a_batch_answers_each(ledger: TokenLedger) -> None:
    with pytest.raises(RejectedEvent) as rejected:
        ledger.record(request_id="x", model="no-such-model", input_tokens=1, output_tokens=1)
    assert rejected.value.code == rejected.value.result.error["code"] == "unknown_model"
    batch = ledger.record_batch(
        [
            {"request_id": "b1", "model": "qwen-3-32b", "input_tokens": 10, "output_tokens": 10},
            {"request_id": "b2", "model": "no-such-model", "input_tokens": 10, "output_tokens": 10},
        ]
    )
    assert (batch.recorded, batch.rejected) == (1, 1)
    assert [r.status for r in batch.results] == ["recorded", "rejected"]


def test_a_wrong_key_is_an_authentication_error(live_server: Any, catalog: None) -> None:
    with TokenLedger("tl_wrong", live_server.url) as ledger, pytest.raises(AuthenticationError) as error:
        ledger.balance()
    assert error.value.status_code == 401


def test_catalog(ledger: TokenLedger) -> None:
    models = {m.model_id: m for m in ledger.catalog.models()}
    assert models["gpt-4o-mini"].input_price_per_million == Decimal("0.15")
    assert "rag_search" in {f.feature_key for f in ledger.catalog.features()}


def test_estimate(ledger: TokenLedger) -> None:
    estimate = ledger.estimate(model="qwen-3-32b", text="hello world " * 100, max_output_tokens=100)
    assert estimate.input_tokens > 0 and estimate.credits is not None


CLOSE = {"Connection": "close"}  # the clients given to the SDK are not closed by it: no keep-alive left behind


class LoseTheAnswer(httpx.BaseTransport):
    """Forwards every request to the live server, but answers the first `fail` of a path with a 503, as a proxy
    that lost the server's answer would: the server did the work, the client must retry."""

    def __init__(self, path: str, fail: int = 1, status: int = 503, before: bool = False) -> None:
        self.inner = httpx.HTTPTransport()
        self.path, self.fail, self.status, self.before = path, fail, status, before
        self.attempts: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            self.attempts.append(request)
            if self.fail:
                self.fail -= 1
                if not self.before:
                    self.inner.handle_request(request).read()
                return httpx.Response(self.status, json={"error": "unavailable", "message": "lost"},
                                      headers={"Retry-After": "0"})  # fmt: skip
        return self.inner.handle_request(request)


def test_a_retried_record_whose_first_answer_was_lost_charges_once(live_server: Any, account: Any) -> None:
    lossy = LoseTheAnswer("/api/usage/events", fail=2)
    with TokenLedger(
        account.api_key, live_server.url, http_client=httpx.Client(transport=lossy, headers=CLOSE), **FAST
    ) as ledger:
        result = ledger.record(model="qwen-3-32b", input_tokens=1000, output_tokens=500)
    assert len(lossy.attempts) == 3
    bodies = {a.content for a in lossy.attempts}
    keys = {a.headers["Idempotency-Key"] for a in lossy.attempts}
    assert len(bodies) == 1 and len(keys) == 1  # the same request id and key on every attempt
    assert result.status == "duplicate"  # the first attempt recorded it; the retry was answered its result
    assert UsageEvent.objects.filter(account=account).count() == 1
    assert wallet_of(account) == (Decimal("9998.5"), Decimal(0))


def test_a_retried_authorize_holds_once(live_server: Any, account: Any) -> None:
    lossy = LoseTheAnswer("/api/usage/authorize", fail=1, status=502)
    with TokenLedger(
        account.api_key, live_server.url, http_client=httpx.Client(transport=lossy, headers=CLOSE), **FAST
    ) as ledger:
        authorization = ledger.authorize(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500)
    assert len(lossy.attempts) == 2
    assert authorization.held_credits == Decimal("1.5")
    assert wallet_of(account) == (Decimal(10000), Decimal("1.5"))


def test_retries_give_up_with_a_typed_error(live_server: Any, account: Any) -> None:
    lossy = LoseTheAnswer("/api/billing/balance", fail=10, before=True)
    client = httpx.Client(transport=lossy, headers=CLOSE)
    with (
        TokenLedger(account.api_key, live_server.url, http_client=client, max_retries=2, **FAST) as ledger,
        pytest.raises(ServerError) as error,
    ):
        ledger.balance()
    assert (error.value.status_code, len(lossy.attempts)) == (503, 3)


def test_a_refused_connection_is_retried_then_raised(catalog: None) -> None:
    from tokenledger import APIConnectionError

    with (
        TokenLedger("tl_x", "http://127.0.0.1:18899", max_retries=1, **FAST) as ledger,
        pytest.raises(APIConnectionError),
    ):
        ledger.balance()


def test_the_async_client_does_the_same(async_ledger_factory: Any, account: Any) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        async with async_ledger_factory() as ledger:
            authorization = await ledger.authorize(
                model="qwen-3-32b", input_tokens=1000, max_output_tokens=500, request_id="as1"
            )
            released = await ledger.release("as1")
            recorded = await ledger.record(request_id="as2", model="qwen-3-32b", input_tokens=1000, output_tokens=100)
            return authorization, released, recorded

    authorization, released, recorded = asyncio.run(scenario())
    assert authorization.held_credits == released.released_credits == Decimal("1.5")
    assert recorded.status == "recorded"
    assert wallet_of(account) == (Decimal("9998.9"), Decimal(0))
