from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.models import Account, BillingPeriod
from billing.services.accounts import account_set_status
from billing.services.api_keys import api_key_revoke
from billing.services.periods import period_close, period_current
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("catalog")


def test_balance_in_credits_usd_and_display_currency(api_client_for):
    account = AccountFactory.create(credits="25000", display_currency="ZAR")
    body = api_client_for(account).get("/api/billing/balance").json()
    assert body == {
        "credits": "25000",
        "held_credits": "0",
        "available_credits": "25000",
        "usd_equivalent": "2.5",
        "local_currency": "ZAR",
        "local_amount": "46.25",
        "credits_per_usd": "10000",
        "low_balance": False,
    }


def test_low_balance_flag_follows_the_account_threshold(api_client_for):
    account = AccountFactory.create(credits="100", low_balance_threshold=Decimal(500))
    assert api_client_for(account).get("/api/billing/balance").json()["low_balance"] is True


@pytest.mark.parametrize(
    ("units", "status", "percentage"),
    [
        (0, "ok", "0"),
        (749, "ok", "74.9"),
        (750, "moderate", "75"),
        (900, "high", "90"),
        (1000, "exceeded", "100"),
    ],
)
def test_usage_status_bands(units, status, percentage, api_client_for):
    account = AccountFactory.create(plan="starter")
    period = period_current(account=account, as_of=datetime.now(UTC))
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=units)
    body = api_client_for(account).get("/api/tokens/usage").json()
    assert (body["plan"], body["unit"], body["limit"]) == ("starter", "messages", "1000")
    assert (body["status"], body["usage_percentage"]) == (status, percentage)
    assert Decimal(body["remaining"]) == Decimal(1000 - units)


def test_unlimited_plan_reports_no_limit(api_client_for):
    body = api_client_for(AccountFactory.create(plan="enterprise")).get("/api/tokens/usage").json()
    assert (body["limit"], body["remaining"], body["usage_percentage"], body["status"]) == (None, None, None, "ok")


def test_invoices_list_and_detail(api_client_for):
    account = AccountFactory.create(plan="starter", as_of=datetime(2026, 10, 5, tzinfo=UTC))
    period = period_current(account=account, as_of=datetime(2026, 10, 5, tzinfo=UTC))
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=1500)
    invoice = period_close(period=period, as_of=datetime(2026, 11, 1, tzinfo=UTC))
    client = api_client_for(account)
    listed = client.get("/api/billing/invoices").json()["results"]
    assert [(i["id"], i["amount_cents"], i["amount"], i["status"]) for i in listed] == [
        (invoice.pk, 508, "5.08", "open")
    ]
    assert client.get(f"/api/billing/invoices/{invoice.pk}").json()["total"] == "5.075"


def test_one_account_never_sees_another_accounts_invoice(api_client_for):
    a = AccountFactory.create(plan="starter", as_of=datetime(2026, 10, 5, tzinfo=UTC))
    b = AccountFactory.create(plan="starter", as_of=datetime(2026, 10, 5, tzinfo=UTC))
    invoice_b = period_close(
        period=period_current(account=b, as_of=datetime(2026, 10, 5, tzinfo=UTC)),
        as_of=datetime(2026, 11, 1, tzinfo=UTC),
    )
    response = api_client_for(a).get(f"/api/billing/invoices/{invoice_b.pk}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert api_client_for(a).get("/api/billing/invoices").json()["results"] == []


def test_each_key_sees_its_own_balance(api_client_for):
    a, b = AccountFactory.create(credits="1"), AccountFactory.create(credits="2")
    assert api_client_for(a).get("/api/billing/balance").json()["credits"] == "1"
    assert api_client_for(b).get("/api/billing/balance").json()["credits"] == "2"


@pytest.mark.parametrize(
    "header", ["", "Bearer ", "Bearer tl_unknown_secret", "Bearer not-a-key", "Basic Zm9vOmJhcg=="]
)
def test_missing_or_unknown_key_is_401_with_json(header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/billing/balance")
    assert response.status_code == 401
    assert response.json()["error"] in {"not_authenticated", "authentication_failed"}
    assert response["WWW-Authenticate"]


def test_revoked_key_is_401(api_client_for):
    account = AccountFactory.create()
    api_key_revoke(key=account.api_keys.get())
    response = api_client_for(account).get("/api/billing/balance")
    assert response.status_code == 401
    assert response.json()["message"] == "The API key is unknown or revoked."


def test_suspended_account_can_still_read_its_balance(api_client_for):
    account = AccountFactory.create(credits="10")
    account_set_status(account=account, status=Account.Status.SUSPENDED)
    assert api_client_for(account).get("/api/billing/balance").status_code == 200


def test_key_use_is_recorded(api_client_for):
    account = AccountFactory.create()
    api_client_for(account).get("/api/billing/balance")
    assert account.api_keys.get().last_used_at is not None


def test_balance_falls_back_to_usd_when_the_display_currency_has_no_rate(api_client_for):
    account = AccountFactory.create(credits="10000", display_currency="EUR")  # the seed has no EUR rate
    body = api_client_for(account).get("/api/billing/balance").json()
    assert (body["local_currency"], body["local_amount"], body["usd_equivalent"]) == ("USD", "1", "1")
