"""On real PostgreSQL with threads: retries racing each other grant once and all get the same answer; racing
creates of one external id make one customer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from billing.models import Account, IdempotencyKey, LedgerEntry, Wallet
from billing.services.server_keys import server_key_issue

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]

THREADS = 12


def _raced(call, threads: int = THREADS) -> list:
    barrier = threading.Barrier(threads)

    def run(n: int):
        try:
            barrier.wait(timeout=30)
            return call(n)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


def test_concurrent_retries_of_a_grant_grant_once_and_answer_alike(api_client_for):
    _, raw = server_key_issue(name="backend", scopes="customers")
    assert api_client_for(raw).put("/api/customers/race", {"name": "Race"}, format="json").status_code == 201

    def grant(n: int):
        response = api_client_for(raw).post(
            "/api/customers/race/credits", {"credits": "700", "reason": "welcome"}, format="json",
            HTTP_IDEMPOTENCY_KEY="one-grant",
        )  # fmt: skip
        return response.status_code, response.json()

    answers = _raced(grant)
    assert {status for status, _ in answers} == {201}
    assert all(body == {"balance": "700", "credits": "700", "expires_at": None} for _, body in answers)
    wallet = Wallet.objects.get(account__external_id="race")
    assert wallet.balance == 700
    assert LedgerEntry.objects.filter(wallet=wallet, kind="grant").count() == 1
    assert IdempotencyKey.objects.count() == 1


def test_concurrent_creates_of_one_external_id_make_one_customer(api_client_for):
    _, raw = server_key_issue(name="backend", scopes="customers")

    def create(n: int):
        response = api_client_for(raw).put(
            "/api/customers/same-id", {"name": "Same", "email": "owner@same.example"}, format="json"
        )
        return response.status_code, response.json()

    answers = _raced(create)
    assert sorted(status for status, _ in answers) == [200] * (THREADS - 1) + [201]
    assert len({body["account_id"] for _, body in answers}) == 1
    assert Account.objects.filter(external_id="same-id").count() == 1


def test_concurrent_retries_of_a_key_issue_make_one_key_and_show_it_to_all(api_client_for):
    _, raw = server_key_issue(name="backend", scopes="customers")
    api_client_for(raw).put("/api/customers/keys", {"name": "Keys"}, format="json")

    def issue(n: int):
        response = api_client_for(raw).post(
            "/api/customers/keys/api-keys", {"name": "prod"}, format="json", HTTP_IDEMPOTENCY_KEY="issue-1"
        )
        return response.status_code, response.json()

    answers = _raced(issue)
    assert {status for status, _ in answers} == {201}
    assert len({body["api_key"] for _, body in answers}) == 1
    assert Account.objects.get(external_id="keys").api_keys.count() == 1
