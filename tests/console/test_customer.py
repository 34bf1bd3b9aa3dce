"""Customer 360: one account's money, plan, usage, invoices, keys, members, rejected events and ledger on one page,
its figures equal to its events' sums by hand, and its actions where the account page has them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Account, LedgerEntry
from tests.console.conftest import NOVEMBER_USAGE, OCTOBER_USAGE, sums, usd
from tests.console.html import body_rows, figures, page, table_row
from usage.models import RejectedEvent

pytestmark = pytest.mark.django_db


def _open(client: Client, account: Account) -> str:
    response = client.get(reverse("admin:console_customer", args=[account.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _expected(usage: list) -> dict[str, str]:
    revenue, cost = sums(usage)
    return {"revenue": usd(revenue), "cost": usd(cost), "margin": usd(revenue - cost)}


@pytest.mark.parametrize("name", ["Alpha", "Beta"])
def test_figures_are_the_accounts_own_events(customers, staff_client: Client, name: str):
    html = _open(staff_client, customers[name])
    november = [u for u in NOVEMBER_USAGE if u.account == name]
    year = [u for u in OCTOBER_USAGE if u.account == name] + november
    assert figures(table_row(html, "customer-figures", data_window="period")) == _expected(november)
    assert figures(table_row(html, "customer-figures", data_window="12m")) == _expected(year)


def test_beta_is_sold_at_a_loss(customers, staff_client: Client):
    html = _open(staff_client, customers["Beta"])
    margin = table_row(html, "customer-figures", data_window="12m").one("td", data_figure="margin")
    assert margin.text() == "-$0.60" and "negative" in margin.classes()


def test_balance_plan_invoices_keys_members_ledger(customers, staff_client: Client):
    account = Account.objects.get(pk=customers["Alpha"].pk)
    account.rejected_events.create(request_id="bad-1", payload={}, error_code="unknown_model",
                                   error_message="no such model", received_at=account.created_at)  # fmt: skip
    html = _open(staff_client, account)
    doc = page(html)
    wallet_credits = account.wallet.balance.quantize(Decimal(1))
    assert doc.one("td", data_fact="balance").text() == f"{wallet_credits:,} credits"
    assert doc.one("td", data_fact="plan").text().startswith("Resale (resale, active)")
    invoices = body_rows(html, "invoices")
    october = sum((u.charge for u in OCTOBER_USAGE if u.account == "Alpha"), Decimal(0))
    assert len(invoices) == 1
    assert invoices[0].one("th").text() == "2026-10-01"
    assert [td.text() for td in invoices[0].all("td")][1] == usd(october)
    keys = body_rows(html, "keys")
    assert len(keys) == account.api_keys.count() == 1
    assert keys[0].one("code").text() == f"tl_{account.api_keys.get().prefix}_…"
    ledger = body_rows(html, "ledger")
    assert len(ledger) == LedgerEntry.objects.filter(wallet__account=account).count()
    assert {row.one("td").text() for row in ledger} >= {"usage", "grant"}
    rejected = page(html).one("table", data_table="rejected")
    assert "waiting for replay: 1" in rejected.one("caption").text()
    assert "bad-1" in rejected.text()
    assert RejectedEvent.objects.filter(account=account).count() == 1


def test_the_actions_of_the_account_page(customers, staff_client: Client):
    account = customers["Alpha"]
    doc = page(_open(staff_client, account))
    actions = {link.text(): link.attrs["href"] for link in doc.one("ul", **{"class": "console-actions"}).all("a")}
    assert set(actions) >= {"Account page", "Issue API key", "Add member", "Adjust credits", "Change plan", "Suspend"}
    for name in ("Account page", "Issue API key", "Adjust credits", "Change plan"):
        assert staff_client.get(actions[name]).status_code == 200, name


def test_usage_chart_has_a_bar_per_day_with_usage(customers, staff_client: Client):
    chart = page(_open(staff_client, customers["Alpha"])).one(data_testid="customer-chart").one("svg")
    revenue_bars = [rect for rect in chart.all("rect") if "revenue" in rect.text() and "$0.00" not in rect.text()]
    # the last 30 days hold 5 Nov and today (21 Nov) for Alpha
    assert len(revenue_bars) == 2
