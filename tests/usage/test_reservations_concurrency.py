"""On real PostgreSQL with threads: releases racing the recording of the same requests never lose or double a credit."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.models import LedgerEntry, Wallet
from tests.factories import AccountFactory
from usage.models import Reservation, UsageEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]

REQUESTS = 24


def _client(account) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")
    return client


def test_release_racing_record_frees_each_hold_once_and_charges_each_call_once():
    account = AccountFactory.create(plan="jive", credits="1000")
    setup = _client(account)
    for n in range(REQUESTS):
        body = {"request_id": f"q{n}", "model": "qwen-3-32b", "input_tokens": 1000, "max_output_tokens": 500}
        assert setup.post("/api/usage/authorize", body, format="json").json()["allowed"] is True
    assert Wallet.objects.get(account=account).held == Decimal("1.5") * REQUESTS
    start = threading.Barrier(2 * REQUESTS)
    answers: dict[str, list[int]] = {"record": [], "release": []}

    def record(n: int) -> None:
        try:
            start.wait(10)
            event = {"request_id": f"q{n}", "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 100}
            answers["record"].append(_client(account).post("/api/usage/events", event, format="json").status_code)
        finally:
            connection.close()

    def release(n: int) -> None:
        try:
            start.wait(10)
            answers["release"].append(_client(account).post(f"/api/usage/reservations/q{n}/release").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(REQUESTS) for work in (record, release)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(answers["record"]) == [201] * REQUESTS  # usage that happened is always recorded
    assert set(answers["release"]) <= {200, 409} and len(answers["release"]) == REQUESTS
    wallet = Wallet.objects.get(account=account)
    assert wallet.held == 0  # every hold freed exactly once, by the release or by the settlement
    assert UsageEvent.objects.filter(account=account).count() == REQUESTS
    assert wallet.balance == Decimal(1000) - Decimal("1.1") * REQUESTS  # each call charged once, at its actual
    assert wallet.balance == sum(LedgerEntry.objects.filter(wallet=wallet).values_list("credits", flat=True))
    statuses = set(Reservation.objects.filter(account=account).values_list("status", flat=True))
    assert statuses <= {"settled", "released"}
    # a release that answered 409 lost to the recording; every other one freed its hold before it
    assert answers["release"].count(409) == Reservation.objects.filter(account=account, status="settled").count()


def test_two_releases_at_once_free_the_hold_once():
    account = AccountFactory.create(plan="jive", credits="100")
    setup = _client(account)
    body = {"request_id": "q", "model": "qwen-3-32b", "input_tokens": 1000, "max_output_tokens": 500}
    setup.post("/api/usage/authorize", body, format="json")
    other = {**body, "request_id": "other"}
    setup.post("/api/usage/authorize", other, format="json")
    start = threading.Barrier(6)
    answers: list[dict] = []

    def release() -> None:
        try:
            start.wait(10)
            answers.append(_client(account).post("/api/usage/reservations/q/release").json())
        finally:
            connection.close()

    threads = [threading.Thread(target=release) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a["status"] for a in answers] == ["released"] * 6
    assert Wallet.objects.get(account=account).held == Decimal("1.5")  # the other request's hold stays
