"""The console home and overview, read as staff: every figure equals the sum of the events that make it, worked
out by hand in conftest; revenue equals what was invoiced plus what is not billed yet."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Account, Invoice
from console.overview import billed
from tests.console.conftest import NOVEMBER_USAGE, NOW, OCTOBER_USAGE, sums, usd
from tests.console.html import body_rows, figures, page, table_row

pytestmark = pytest.mark.django_db

TODAY = [u for u in NOVEMBER_USAGE if u.at.date() == NOW.date()]
YEAR = OCTOBER_USAGE + NOVEMBER_USAGE


def _row(html: str, table: str, attribute: str, key: str) -> dict[str, str]:
    return figures(table_row(html, table, **{attribute.replace("-", "_"): key}))


def _expected(usage: list) -> dict[str, str]:
    revenue, cost = sums(usage)
    return {"revenue": usd(revenue), "cost": usd(cost), "margin": usd(revenue - cost)}


@pytest.mark.parametrize(("window", "usage"), [("today", TODAY), ("period", NOVEMBER_USAGE), ("12m", YEAR)])
def test_home_headline_is_the_sum_of_the_events(customers, staff_client: Client, window: str, usage: list):
    page = staff_client.get(reverse("admin:index"))
    assert page.status_code == 200
    assert _row(page.content.decode(), "headline", "data-window", window) == _expected(usage)


def test_home_figures_by_hand():
    """The hand sums themselves, so a wrong fixture cannot hide: Alpha sells at 1.5x cost, Beta at 0.8x."""
    assert _expected(TODAY) == {"revenue": "$1.50", "cost": "$1.00", "margin": "$0.50"}
    assert _expected(NOVEMBER_USAGE) == {"revenue": "$8.30", "cost": "$6.00", "margin": "$2.30"}
    assert _expected(YEAR) == {"revenue": "$15.90", "cost": "$12.00", "margin": "$3.90"}


def test_revenue_is_invoiced_plus_unbilled(customers):
    split = billed(now=NOW)
    october, _ = sums(OCTOBER_USAGE)
    november, _ = sums(NOVEMBER_USAGE)
    assert Invoice.objects.count() == 2
    assert split.invoiced == pytest.approx(october)
    assert split.unbilled == pytest.approx(november)
    assert split.late_invoiced == split.late_unbilled == Decimal(0)
    assert split.revenue == pytest.approx(october + november)
    assert split.matches


def test_home_says_the_books_add_up(customers, staff_client: Client):
    line = page(staff_client.get(reverse("admin:index")).content).one(data_testid="billed").text()
    assert "revenue $15.90" in line
    assert "invoiced $7.60 (2 invoices)" in line
    assert "unbilled this period $8.30" in line
    assert "✓" in line


def test_a_mismatch_is_shown(customers, staff_client: Client):
    """An invoice that disagrees with its events (a broken close) makes the line say so."""
    Invoice.objects.filter(account__name="Alpha").update(charge_usd=Decimal("5"))
    line = page(staff_client.get(reverse("admin:index")).content).one(data_testid="billed")
    assert "mismatch" in line.classes()
    assert "$1.00 unaccounted" in line.text()


def test_overview_by_model_plan_and_customer(customers, staff_client: Client):
    html = staff_client.get(reverse("admin:console_overview"), {"range": "period"}).content.decode()
    alpha = [u for u in NOVEMBER_USAGE if u.account == "Alpha"]
    beta = [u for u in NOVEMBER_USAGE if u.account == "Beta"]
    assert _row(html, "by-model", "data-key", "console-test-model") == _expected(NOVEMBER_USAGE)
    assert _row(html, "by-plan", "data-key", "resale") == _expected(alpha)
    assert _row(html, "by-plan", "data-key", "loss") == _expected(beta)
    assert _row(html, "by-customer", "data-key", str(customers["Alpha"].pk)) == _expected(alpha)
    assert _row(html, "by-customer", "data-key", str(customers["Beta"].pk)) == _expected(beta)
    assert _row(html, "by-day", "data-key", "2026-11-05") == _expected([NOVEMBER_USAGE[0]])


def test_overview_by_month_over_12_months(customers, staff_client: Client):
    html = staff_client.get(reverse("admin:console_overview"), {"range": "12m"}).content.decode()
    months = [row.one("th").text() for row in body_rows(html, "by-day")]
    assert months == ["2026-10", "2026-11"]
    assert figures(body_rows(html, "total")[0])["revenue"] == "$15.90"


def test_negative_margin_customer_comes_first_among_the_lowest(customers, staff_client: Client):
    html = staff_client.get(reverse("admin:console_overview"), {"range": "12m"}).content.decode()
    first = body_rows(html, "lowest-margin")[0]
    assert first.one("th").text() == "Beta"
    margin = first.one("td", data_figure="margin")
    assert margin.text() == "-$0.60"  # 2.40 charged against 3.00 of cost
    assert "negative" in margin.classes()
    assert body_rows(html, "top-margin")[0].one("th").text() == "Alpha"


def test_growth_compares_the_last_30_days_with_the_30_before(customers, staff_client: Client):
    html = staff_client.get(reverse("admin:console_overview")).content.decode()
    rows = {row.attrs["data-key"]: [td.text() for td in row.all("td")] for row in body_rows(html, "growth")}
    # the last 30 days (from 22 Oct) hold November only; the 30 before hold October
    alpha = customers["Alpha"].pk
    assert rows[str(alpha)] == ["$7.50", "$6.00", "$1.50", "25.0 %"]
    assert rows[str(customers["Beta"].pk)] == ["$0.80", "$1.60", "-$0.80", "-50.0 %"]


@pytest.mark.parametrize("query", [{"range": "week"}, {"range": "x" * 5000}, {"range": ""}])
def test_bad_range_is_a_400(customers, staff_client: Client, query: dict):
    page = staff_client.get(reverse("admin:console_overview"), query)
    assert page.status_code == 400
    assert b"choose one of today, period, 12m" in page.content


def test_unknown_customer_is_a_404(customers, staff_client: Client):
    assert staff_client.get(reverse("admin:console_customer", args=[999999])).status_code == 404
    assert staff_client.get("/admin/console/customers/abc/").status_code == 404
    assert staff_client.get("/admin/console/customers/99999999999999999999999/").status_code == 404  # past bigint


@pytest.mark.parametrize("name", ["admin:index", "admin:console_overview"])
def test_not_staff_is_sent_to_sign_in(customers, member_client: Client, name: str):
    for client in (member_client, Client()):
        page = client.get(reverse(name))
        assert page.status_code == 302
        assert page["Location"].startswith(reverse("admin:login"))


def test_customer_page_is_staff_only(customers, member_client: Client):
    account: Account = customers["Alpha"]
    page = member_client.get(reverse("admin:console_customer", args=[account.pk]))
    assert page.status_code == 302
    assert b"Alpha" not in page.content


def test_empty_console(staff_client: Client, console_catalog):
    """No usage, no runs: every page still answers, with zeros."""
    assert staff_client.get(reverse("admin:index")).status_code == 200
    for window in ("today", "period", "12m"):
        assert staff_client.get(reverse("admin:console_overview"), {"range": window}).status_code == 200


def test_the_app_list_opens_with_the_console(customers, staff_client: Client):
    home = page(staff_client.get(reverse("admin:index")).content)
    link = home.one("div", id="content-main").one("a", href=reverse("admin:console_overview"))
    assert link.text() == "Console"
    sidebar = page(staff_client.get(reverse("admin:billing_account_changelist")).content).one("nav", id="nav-sidebar")
    assert "Overview: revenue, margin, customers" in sidebar.text()


@pytest.mark.postgres
def test_revenue_is_invoiced_plus_unbilled_exactly_on_postgresql(customers):
    """PostgreSQL sums decimals exactly: the two books agree to the last of the twelve places, not just the cent."""
    split = billed(now=NOW)
    october, _ = sums(OCTOBER_USAGE)
    november, _ = sums(NOVEMBER_USAGE)
    assert (split.invoiced, split.unbilled, split.revenue) == (october, november, october + november)
    assert split.difference == 0


def test_home_lists_this_periods_top_customers(customers, staff_client: Client):
    rows = body_rows(staff_client.get(reverse("admin:index")).content, "home-top")
    shown = [(row.one("th").text(), [td.text() for td in row.all("td")]) for row in rows]
    alpha, _ = sums([u for u in NOVEMBER_USAGE if u.account == "Alpha"])
    assert shown == [("Alpha", [usd(alpha), "$2.50"]), ("Beta", ["$0.80", "-$0.20"])]
