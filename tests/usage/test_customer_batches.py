"""One key for everything: a server key's batch spans customers; an account key may name only itself."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.models import LedgerEntry, Wallet
from billing.services.api_keys import api_key_issue
from billing.services.customers import customer_upsert
from billing.services.server_keys import server_key_issue
from billing.services.wallet import wallet_grant
from tests.factories import AccountFactory
from usage.models import UsageEvent

pytestmark = pytest.mark.usefixtures("catalog")


def _event(request_id: str, **fields):
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500, **fields}


def _customer(external_id: str, credits: str = "10000"):
    account, _ = customer_upsert(external_id=external_id, fields={"name": external_id, "plan": "jive"})
    wallet_grant(account=account, credits=credits, reason="test")
    return account


def _server(scopes: str = "usage") -> APIClient:
    _, raw = server_key_issue(name="ingest", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_a_server_key_batch_spans_customers_and_answers_in_order():
    alpha, beta = _customer("alpha"), _customer("beta")
    events = [
        _event("a1", customer="alpha"),
        _event("b1", customer="beta"),
        _event("x1", customer="nobody"),
        _event("d1"),  # the header's customer
        _event("b2", customer="beta"),
    ]
    response = _server().post("/api/usage/events", {"events": events}, format="json", HTTP_TOKENLEDGER_CUSTOMER="alpha")
    assert response.status_code == 200
    body = response.json()
    assert [(r["request_id"], r["status"]) for r in body["results"]] == [
        ("a1", "recorded"), ("b1", "recorded"), ("x1", "rejected"), ("d1", "recorded"), ("b2", "recorded"),
    ]  # fmt: skip
    assert body["results"][2]["error"]["code"] == "unknown_customer"
    assert (body["recorded"], body["rejected"]) == (4, 1)
    assert set(UsageEvent.objects.filter(account=alpha).values_list("request_id", flat=True)) == {"a1", "d1"}
    assert set(UsageEvent.objects.filter(account=beta).values_list("request_id", flat=True)) == {"b1", "b2"}
    assert Wallet.objects.get(account=alpha).balance == Decimal("9997")  # 1.5 credits an event
    assert Wallet.objects.get(account=beta).balance == Decimal("9997")
    # one ledger entry per customer per batch
    assert LedgerEntry.objects.filter(wallet__account=beta, kind="usage").count() == 1


def test_without_a_header_each_event_names_its_customer_or_is_rejected():
    _customer("gamma")
    events = [_event("g1", customer="gamma"), _event("g2"), _event("g3", customer=7)]
    body = _server().post("/api/usage/events", {"events": events}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["recorded", "rejected", "rejected"]
    assert body["results"][1]["error"]["code"] == "customer_required"
    assert body["results"][2]["error"]["code"] == "invalid_event"


def test_a_retried_spanning_batch_records_nothing_twice():
    _customer("delta"), _customer("epsilon")
    batch = {"events": [_event("r1", customer="delta"), _event("r1", customer="epsilon")]}
    client = _server()
    assert client.post("/api/usage/events", batch, format="json").json()["recorded"] == 2
    again = client.post("/api/usage/events", batch, format="json").json()
    assert (again["recorded"], again["duplicate"]) == (0, 2)
    assert UsageEvent.objects.count() == 2


def test_a_single_event_with_an_unknown_header_customer_is_404_and_needs_the_usage_scope():
    _customer("zeta")
    unknown = _server().post("/api/usage/events", _event("z1"), format="json", HTTP_TOKENLEDGER_CUSTOMER="nope")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_customer"
    read_only = _server("read").post("/api/usage/events", _event("z1"), format="json", HTTP_TOKENLEDGER_CUSTOMER="zeta")
    assert read_only.status_code == 403
    single = _server().post("/api/usage/events", _event("z1", customer="zeta"), format="json")
    assert single.status_code == 201
    missing = _server().post("/api/usage/events", _event("z2"), format="json")
    assert missing.status_code == 400 and missing.json()["error"] == "customer_required"
    assert UsageEvent.objects.count() == 1


def test_an_account_key_may_name_only_its_own_account(api_client_for):
    own = _customer("own")
    _, raw = api_key_issue(account=own)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    _customer("other")
    events = [_event("o1", customer="own"), _event("o2", customer="other"), _event("o3")]
    body = client.post("/api/usage/events", {"events": events}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["recorded", "rejected", "recorded"]
    assert body["results"][1]["error"]["code"] == "customer_mismatch"
    plain = AccountFactory.create(plan="jive", credits="100")  # no external id: any `customer` is a mismatch
    body = api_client_for(plain).post("/api/usage/events", {"events": [_event("p1", customer="own")]}, format="json")
    assert body.json()["results"][0]["error"]["code"] == "customer_mismatch"
    assert not UsageEvent.objects.filter(account__external_id="other").exists()
