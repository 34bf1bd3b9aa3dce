"""The console in a real browser: Debian's chromium driven by Playwright against the live test server.

Staff sign in through the admin's sign-in form, read the home's figures (equal to the sums worked out by hand in
conftest), open the overview, a customer 360 page and a change preview. Screenshots of each page at desktop
(1280x800) and phone (390x844) size go to the test's own output directory (tmp_path), never into the repository.
Without a `chromium` on the PATH the module is skipped, and the summary says why.
"""

# ruff: noqa: F811 - the browser fixture is imported from tests.browser

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import DESKTOP, PHONE, browser, chromium_or_skip, shoot  # noqa: F401

chromium_or_skip()

from django.contrib.auth.models import User  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from billing.models import Account  # noqa: E402
from pricing.models import AIModel, ModelPrice  # noqa: E402
from tests.console.conftest import MODEL, STAFF_PASSWORD  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def signed_in(browser: Browser, live_server: Any, staff: User) -> Iterator[Callable[..., Page]]:
    """signed_in(phone=False): a fresh browser context, signed in as staff through the admin's sign-in form."""
    contexts = []

    def make(*, phone: bool = False) -> Page:
        context = browser.new_context(viewport=PHONE if phone else DESKTOP, base_url=live_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/admin/")
        page.locator('input[name="username"]').fill(staff.username)
        page.locator('input[name="password"]').fill(STAFF_PASSWORD)
        page.locator('input[type="submit"], button[type="submit"]').first.click()
        expect(page.get_by_role("heading", name="Revenue and margin")).to_be_visible()
        return page

    yield make
    for context in contexts:
        context.close()


def _figures(page: Page, row: str) -> list[str]:
    cells = page.locator(row).locator("td[data-figure]")
    return [text.strip() for text in cells.all_inner_texts()]


def test_home_shows_the_figures_and_health(customers, signed_in: Callable[..., Page], tmp_path: Path):
    page = signed_in()
    headline = 'table[data-table="headline"] tr'
    assert _figures(page, f'{headline}[data-window="today"]') == ["$1.50", "$1.00", "$0.50"]
    assert _figures(page, f'{headline}[data-window="period"]') == ["$8.30", "$6.00", "$2.30"]
    assert _figures(page, f'{headline}[data-window="12m"]') == ["$15.90", "$12.00", "$3.90"]
    billed = page.get_by_test_id("billed")
    expect(billed).to_contain_text("revenue $15.90")
    expect(billed).to_contain_text("invoiced $7.60")
    expect(billed).to_contain_text("unbilled this period $8.30")
    expect(page.locator("[data-check]")).to_have_count(8)
    expect(page.get_by_test_id("period-chart").locator("svg")).to_be_visible()
    shoot(page, tmp_path, "console-home")
    phone = signed_in(phone=True)
    assert _figures(phone, f'{headline}[data-window="12m"]') == ["$15.90", "$12.00", "$3.90"]
    shoot(phone, tmp_path, "console-home-phone")


def test_overview_and_a_customer_360(customers, signed_in: Callable[..., Page], tmp_path: Path):
    page = signed_in()
    page.get_by_role("link", name="Last 12 months").first.click()
    expect(page.get_by_role("heading", name="Overview: last 12 months")).to_be_visible()
    total = 'table[data-table="total"] tbody tr'
    assert _figures(page, total) == ["$15.90", "$12.00", "$3.90"]
    expect(page.get_by_test_id("model-chart").locator("svg")).to_be_visible()
    shoot(page, tmp_path, "console-overview")
    lowest = page.locator('table[data-table="lowest-margin"] tbody tr').first
    expect(lowest.locator("th")).to_have_text("Beta")
    lowest.get_by_role("link", name="Beta").click()
    expect(page.get_by_role("heading", name="Customer 360: Beta")).to_be_visible()
    assert _figures(page, 'table[data-table="customer-figures"] tr[data-window="12m"]') == ["$2.40", "$3.00", "-$0.60"]
    expect(page.locator('td[data-fact="plan"]')).to_contain_text("Loss (loss, active)")
    expect(page.get_by_role("link", name="Adjust credits")).to_be_visible()
    shoot(page, tmp_path, "console-customer")

    phone = signed_in(phone=True)
    phone.goto(f"/admin/console/customers/{customers['Beta'].pk}/")
    expect(phone.get_by_role("heading", name="Customer 360: Beta")).to_be_visible()
    shoot(phone, tmp_path, "console-customer-phone")
    phone.goto("/admin/console/?range=period")
    shoot(phone, tmp_path, "console-overview-phone")


def test_a_change_preview_in_the_model_price_form(customers, signed_in: Callable[..., Page], tmp_path: Path):
    model = AIModel.objects.get(model_id=MODEL)
    versions = ModelPrice.objects.count()
    page = signed_in()
    page.goto(f"/admin/pricing/aimodel/{model.pk}/price/")
    page.locator('input[name="input_per_million"]').fill("2")
    page.locator('input[name="output_per_million"]').fill("4")
    page.get_by_role("button", name="Preview the effect on last period's usage").click()
    preview = page.get_by_test_id("preview")
    expect(preview).to_contain_text("3 events, 2 customers affected")
    alpha = preview.locator("tbody tr").filter(has_text="Alpha")
    expect(alpha.locator("td")).to_have_text(["$6.00", "$12.00", "$4.00", "$8.00", "$2.00", "$4.00"])
    expect(page.get_by_text("Nothing has been saved yet.")).to_be_visible()
    assert ModelPrice.objects.count() == versions
    shoot(page, tmp_path, "console-preview")
    phone = signed_in(phone=True)
    phone.goto(f"/admin/pricing/aimodel/{model.pk}/price/")
    phone.locator('input[name="input_per_million"]').fill("2")
    phone.get_by_role("button", name="Preview the effect on last period's usage").click()
    expect(phone.get_by_test_id("preview")).to_be_visible()
    shoot(phone, tmp_path, "console-preview-phone")


def test_account_toolbar_no_longer_covers_the_title(customers, signed_in: Callable[..., Page], tmp_path: Path):
    account: Account = customers["Alpha"]
    page = signed_in()
    page.goto(f"/admin/billing/account/{account.pk}/change/")
    tools = page.locator("#content .object-tools").bounding_box()
    assert tools is not None
    for heading in ("#content > h1", "#content > h2"):  # the title and the account's name under it
        box = page.locator(heading).bounding_box()
        assert box is not None
        assert tools["y"] >= box["y"] + box["height"], (heading, box, tools)  # below it, not over it
    shoot(page, tmp_path, "account-page")
    page.get_by_role("link", name="Customer 360").click()
    expect(page.get_by_role("heading", name="Customer 360: Alpha")).to_be_visible()
