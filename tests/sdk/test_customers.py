"""A reseller's backend with only a server key, through the SDK against a live TokenLedger: customers by its own ids,
grants that a retry cannot double, usage for any customer, keys, portal links."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from tokenledger import Denied, NotFoundError, PermissionDeniedError, TokenLedger

from billing.services.server_keys import server_key_issue
from tests.sdk.conftest import FAST
from tests.sdk.test_client import CLOSE, LoseTheAnswer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(live_server: Any, catalog: None) -> Any:
    _, raw_key = server_key_issue(name="reseller backend", scopes="customers,usage,read")
    with TokenLedger(raw_key, live_server.url, **FAST) as ledger:
        yield ledger


def test_customers_are_created_granted_metered_and_read(server: TokenLedger) -> None:
    created = server.customers.upsert("cus_1", name="Acme Ltd", email="owner@acme.example", plan="jive")
    assert (created.external_id, created.name, created.plan, created.status) == ("cus_1", "Acme Ltd", "jive", "active")
    assert (
        server.customers.upsert("cus_1", name="Acme Ltd", email="owner@acme.example").account_id == created.account_id
    )
    server.customers.upsert("cus_2", name="Beta Inc", plan="jive")
    assert {c.external_id for c in server.customers.iter()} == {"cus_1", "cus_2"}

    grant = server.customers.grant("cus_1", credits="10000", reason="welcome", idempotency_key="welcome-cus_1")
    again = server.customers.grant("cus_1", credits="10000", reason="welcome", idempotency_key="welcome-cus_1")
    assert grant.balance == again.balance == Decimal(10000)
    server.customers.grant("cus_2", credits=Decimal(500), reason="trial")

    acme = server.with_customer("cus_1")
    with acme.guard(model="qwen-3-32b", input_tokens=1000, max_output_tokens=500) as g:
        g.record(input_tokens=1000, output_tokens=500)
    batch = server.record_batch(
        [
            {
                "request_id": "b1",
                "model": "qwen-3-32b",
                "input_tokens": 1000,
                "output_tokens": 500,
                "customer": "cus_1",
            },
            {
                "request_id": "b1",
                "model": "qwen-3-32b",
                "input_tokens": 1000,
                "output_tokens": 500,
                "customer": "cus_2",
            },
            {"request_id": "b2", "model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1, "customer": "cus_404"},
        ]
    )
    assert [r.status for r in batch.results] == ["recorded", "recorded", "rejected"]
    assert acme.balance().credits == Decimal(10000) - 3  # two calls of 1.5 credits, the grant once
    assert server.customers.balance("cus_2").credits == Decimal("498.5")
    assert server.customers.stats("cus_1").total_events == 2
    assert server.customers.usage("cus_1").plan == "jive"
    assert server.customers.invoices("cus_1") == []


def test_a_grant_whose_answer_was_lost_grants_once(live_server: Any, server: TokenLedger) -> None:
    server.customers.upsert("cus_g", name="Gamma", plan="jive")
    raw_key = server._settings.api_key
    lossy = LoseTheAnswer("/api/customers/cus_g/credits", fail=1)
    with TokenLedger(
        raw_key, live_server.url, http_client=httpx.Client(transport=lossy, headers=CLOSE), **FAST
    ) as ledger:
        grant = ledger.customers.grant("cus_g", credits="250", reason="goodwill")  # no key given: one made per call
    assert len(lossy.attempts) == 2
    assert grant.balance == Decimal(250)
    assert server.customers.balance("cus_g").credits == Decimal(250)


def test_suspend_plan_keys_and_portal(live_server: Any, server: TokenLedger) -> None:
    server.customers.upsert("cus_s", name="Sigma", email="owner@sigma.example", plan="jive")
    server.customers.grant("cus_s", credits="100", reason="start")
    assert server.customers.suspend("cus_s").status == "suspended"
    with pytest.raises(Denied) as denied:
        server.with_customer("cus_s").authorize(model="qwen-3-32b", input_tokens=10, max_output_tokens=10)
    assert denied.value.reason == "account_suspended"
    assert server.customers.reactivate("cus_s").status == "active"
    assert server.customers.change_plan("cus_s", "jigga", when="next_period").pending_plan == "jigga"

    key = server.customers.api_keys.create("cus_s", name="production")
    assert key.api_key and key.api_key.startswith("tl_")
    with TokenLedger(key.api_key, live_server.url) as own:
        assert own.balance().credits == Decimal(100)
    assert [k.name for k in server.customers.api_keys.list("cus_s")][-1] == "production"
    server.customers.api_keys.revoke("cus_s", key.key_id)
    assert server.customers.api_keys.list("cus_s")[-1].revoked_at is not None

    portal = server.customers.portal_session("cus_s", return_url="https://sigma.example/app")
    assert portal.url.startswith(live_server.url) and portal.expires_at is not None


def test_unknown_customers_and_missing_scopes_are_typed(live_server: Any, server: TokenLedger) -> None:
    with pytest.raises(NotFoundError):
        server.customers.get("nobody")
    _, read_only = server_key_issue(name="reader", scopes="read")
    with TokenLedger(read_only, live_server.url) as reader, pytest.raises(PermissionDeniedError) as refused:
        reader.customers.upsert("cus_x", name="X")
    assert refused.value.status_code == 403
