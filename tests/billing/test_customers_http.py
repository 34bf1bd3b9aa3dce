"""A reseller's backend holding only a server key, over real HTTP against a live server: create a customer by its
own id, grant credits (a retried grant grants once), send a batch spanning two customers, read a balance, and link
the customer's user to the dashboard with a one-time portal link."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]


def _event(request_id: str, customer: str) -> dict:
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500,
            "customer": customer}  # fmt: skip


def test_a_backend_with_only_a_server_key_runs_its_customers_over_http(live_server):
    out = io.StringIO()
    call_command("issue_server_key", "--name", "reseller backend", "--scopes", "customers,usage,read", stdout=out)
    server_key = json.loads(out.getvalue())["server_key"]
    headers = {"Authorization": f"Bearer {server_key}", "Connection": "close"}
    api = httpx.Client(base_url=live_server.url, headers=headers, timeout=30)

    created = api.put("/api/customers/cus_001", json={"name": "Acme Ltd", "email": "owner@acme.example"})
    assert created.status_code == 201 and created.json()["external_id"] == "cus_001"
    assert api.put("/api/customers/cus_002", json={"name": "Beta Inc"}).status_code == 201
    assert (
        api.put("/api/customers/cus_001", json={"name": "Acme Ltd", "email": "owner@acme.example"}).status_code == 200
    )

    grant = {"credits": "10000", "reason": "welcome credits"}
    first = api.post("/api/customers/cus_001/credits", json=grant, headers={"Idempotency-Key": "welcome-cus_001"})
    retry = api.post("/api/customers/cus_001/credits", json=grant, headers={"Idempotency-Key": "welcome-cus_001"})
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json() and first.json()["balance"] == "10000"
    api.post("/api/customers/cus_002/credits", json={"credits": "500", "reason": "trial"},
             headers={"Idempotency-Key": "trial-cus_002"})  # fmt: skip

    batch = api.post(
        "/api/usage/events",
        json={"events": [_event("e1", "cus_001"), _event("e2", "cus_002"), _event("e3", "cus_001"),
                         _event("e4", "cus_404")]},
    )  # fmt: skip
    assert batch.status_code == 200
    assert [r["status"] for r in batch.json()["results"]] == ["recorded", "recorded", "recorded", "rejected"]

    balance = api.get("/api/billing/balance", headers={"TokenLedger-Customer": "cus_001"}).json()
    assert balance["credits"] == "9997"  # 10,000 granted once, two events of 1.5 credits
    assert api.get("/api/customers/cus_002").json()["balance"]["credits"] == "498.5"

    portal = api.post("/api/customers/cus_001/portal-sessions", json={"return_url": "https://acme.example/app"})
    assert portal.status_code == 201
    url = portal.json()["url"]
    assert url.startswith(live_server.url + "/portal/")

    # every client closes its connections, so no request thread outlives the live server
    browser = httpx.Client(timeout=30, follow_redirects=True, headers={"Connection": "close"})
    page = browser.get(url)
    assert page.status_code == 200 and str(page.url) == live_server.url + "/"
    shown = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "Acme Ltd" in shown and "9,997" in shown

    stranger = httpx.Client(timeout=30, follow_redirects=False, headers={"Connection": "close"})
    reused = stranger.get(url)
    assert reused.status_code == 410 and "no longer works" in reused.text
    assert stranger.get(live_server.url + "/").status_code == 302  # still signed out
    for client in (api, browser, stranger):
        client.close()
