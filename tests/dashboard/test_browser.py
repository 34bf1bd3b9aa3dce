"""The dashboard in a real browser: Debian's chromium driven by Playwright against the live test server.

Each test signs in through the login form and works the pages as a person would. Screenshots of every page, at a
desktop (1280x800) and a phone (390x844) size, are saved under var/screenshots/ (not committed). Without a
`chromium` on the PATH the whole module is skipped, and the summary says why.
"""

# ruff: noqa: F811 - the shared Stripe fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser import DESKTOP, PHONE, browser, chromium_or_skip, shoot  # noqa: F401

chromium_or_skip()

from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from playwright.sync_api import Browser, Page, Route, expect  # noqa: E402

from billing.models import Account, ApiKey, BillingPeriod, Invoice, Membership, TopUp  # noqa: E402
from billing.services.api_keys import api_key_authenticate  # noqa: E402
from billing.services.periods import period_close, period_current  # noqa: E402
from billing.services.wallet import wallet_adjust  # noqa: E402
from pricing.models import AIModel  # noqa: E402
from pricing.services import model_price_set  # noqa: E402
from tests.billing.stripe_samples import Recorded, RecordingStripe, stripe_off, stripe_recorder  # noqa: E402, F401
from tests.dashboard.conftest import OWNER_EMAIL, OWNER_PASSWORD, add_member, record, spread  # noqa: E402
from usage.models import Alert, UsageEvent  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

VIEWER_EMAIL, VIEWER_PASSWORD = "viewer@example.com", "viewer-password-123"


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = Path(settings.VAR_DIR) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def open_page(browser: Browser, live_server: Any) -> Iterator[Callable[..., Page]]:
    """open_page(email, password, phone=False): a fresh browser context, signed in through the login form."""
    contexts = []

    def make(email: str = OWNER_EMAIL, password: str = OWNER_PASSWORD, *, phone: bool = False) -> Page:
        context = browser.new_context(viewport=PHONE if phone else DESKTOP, base_url=live_server.url,
                                      accept_downloads=True)  # fmt: skip
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/")
        expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{live_server.url}/")
        return page

    yield make
    for context in contexts:
        context.close()


def _days_with_usage(events: list[Any]) -> int:
    today = timezone.now().astimezone(UTC).date()
    return len({at.astimezone(UTC).date() for at, *_ in events if (today - at.astimezone(UTC).date()).days < 30})


def test_sign_in_see_balance_and_charts(account: Account, open_page: Callable[..., Page], screenshots: Path):
    now = timezone.now()
    events = spread([1, 2, 4, 8, 15, 22], per_day=3, now=now) + spread(
        [1, 3], per_day=2, model="claude-3-5-haiku", operation="summarize", now=now
    )
    record(account, events)
    page = open_page()
    expect(page.get_by_role("heading", name="Balance", exact=True)).to_be_visible()
    expect(page.get_by_test_id("credits")).to_have_text("250,000")
    expect(page.get_by_test_id("usd")).to_have_text("$25.00")
    chart = page.get_by_test_id("daily-chart").locator("svg")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar")).to_have_count(_days_with_usage(events))
    expect(page.get_by_test_id("breakdown-chart").locator("rect.bar")).to_have_count(2)
    expect(page.get_by_test_id("usage-status")).to_have_text("ok")
    shoot(page, screenshots, "balance")
    page.get_by_role("link", name="Operation").click()
    expect(page.get_by_role("heading", name="By operation")).to_be_visible()

    phone = open_page(phone=True)
    expect(phone.get_by_test_id("daily-chart").locator("rect.bar")).to_have_count(_days_with_usage(events))
    shoot(phone, screenshots, "balance-phone")
    # nothing sticks out sideways on a phone
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_create_and_revoke_a_key(account: Account, open_page: Callable[..., Page], screenshots: Path):
    page = open_page()
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Key name").fill("browser test")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("API key").input_value()
    assert secret.startswith("tl_")
    key = api_key_authenticate(secret)
    assert key is not None and key.account_id == account.pk and key.name == "browser test"
    shoot(page, screenshots, "keys-created")
    row = page.locator(f'tr[data-key="{key.prefix}"]')
    expect(row.get_by_text("live")).to_be_visible()
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(f'tr[data-key="{key.prefix}"]').get_by_text("revoked")).to_be_visible()
    expect(page.get_by_label("API key")).to_have_count(0)  # the secret is never shown again
    assert api_key_authenticate(secret) is None
    shoot(page, screenshots, "keys")
    phone = open_page(phone=True)
    phone.goto("/keys/")
    shoot(phone, screenshots, "keys-phone")


def _checkout_sessions(stripe: RecordingStripe) -> None:
    def create(req: Recorded) -> dict[str, Any]:
        session_id = stripe.next_id("cs")
        return {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }

    stripe.on("POST", "/v1/checkout/sessions", create)


def test_start_a_top_up_against_the_recording_stripe(
    account: Account, open_page: Callable[..., Page], screenshots: Path, stripe_recorder: RecordingStripe
):
    _checkout_sessions(stripe_recorder)
    page = open_page()
    # Stripe's hosted page is answered here: no test reaches the internet
    page.route("https://checkout.stripe.com/**", lambda route: _fake_checkout(route))
    page.get_by_role("link", name="Top up", exact=True).first.click()
    expect(page.get_by_role("heading", name="Top up")).to_be_visible()
    shoot(page, screenshots, "topup")
    page.get_by_role("button", name="Buy 100,000 credits for $10.00").click()
    expect(page.get_by_role("heading", name="Stripe Checkout (test stand-in)")).to_be_visible()
    assert page.url.startswith("https://checkout.stripe.com/c/pay/cs_test")
    topup = TopUp.objects.get(account=account)
    assert (topup.status, topup.amount_usd, topup.credits) == ("pending", Decimal(10), Decimal(100_000))
    assert stripe_recorder.only("POST", "/v1/checkout/sessions").idempotency_key == f"topup:{topup.pk}"
    page.goto("/top-up/")
    expect(page.get_by_role("heading", name="Waiting for payment")).to_be_visible()
    expect(page.get_by_role("link", name="Continue to payment")).to_have_attribute("href", topup.checkout_url)
    page.goto(f"/?checkout=success&session_id={topup.stripe_checkout_session_id}")
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    shoot(page, screenshots, "topup-success")
    page.goto("/plans/")
    expect(page.get_by_role("button", name="Subscribe to Professional")).to_be_visible()
    shoot(page, screenshots, "plans-stripe")
    phone = open_page(phone=True)
    phone.goto("/top-up/")
    shoot(phone, screenshots, "topup-phone")


def _fake_checkout(route: Route) -> None:
    route.fulfill(status=200, content_type="text/html", body="<h1>Stripe Checkout (test stand-in)</h1>")


def test_top_up_says_stripe_is_not_configured(
    account: Account, open_page: Callable[..., Page], screenshots: Path, stripe_off: None
):
    page = open_page()
    page.goto("/top-up/")
    expect(page.get_by_test_id("stripe-off")).to_contain_text("Stripe is not configured")
    expect(page.get_by_role("button", name="Continue to payment")).to_have_count(0)
    shoot(page, screenshots, "topup-not-configured")


def test_filter_usage_and_download_csv(
    account: Account, open_page: Callable[..., Page], screenshots: Path, tmp_path: Path
):
    now = timezone.now()
    record(
        account,
        spread([1, 2, 3], per_day=4, now=now) + spread([1, 2], per_day=3, model="claude-3-5-haiku", now=now),
    )
    page = open_page()
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.get_by_test_id("usage-table").locator("tbody tr")).to_have_count(18)
    page.get_by_label("Model").select_option("claude-3-5-haiku")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_test_id("usage-table").locator("tbody tr")
    expect(rows).to_have_count(6)
    for text in rows.all_inner_texts():
        assert "claude-3-5-haiku" in text and "gpt-4o-mini" not in text
    shoot(page, screenshots, "usage")
    with page.expect_download() as info:
        page.get_by_test_id("csv-link").click()
    path = tmp_path / "usage.csv"
    info.value.save_as(path)
    lines = path.read_text().strip().splitlines()
    assert lines[0].startswith("request_id,occurred_at")
    assert len(lines) == 1 + 6 and all(",claude-3-5-haiku," in line for line in lines[1:])
    phone = open_page(phone=True)
    phone.goto("/usage/")
    shoot(phone, screenshots, "usage-phone")


def test_a_viewer_is_refused_a_key(account: Account, open_page: Callable[..., Page], screenshots: Path):
    viewer = add_member(account, Membership.Role.VIEWER, VIEWER_EMAIL)
    viewer.set_password(VIEWER_PASSWORD)
    viewer.save()
    keys_before = ApiKey.objects.filter(account=account).count()
    page = open_page(VIEWER_EMAIL, VIEWER_PASSWORD)
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_text("Only owners and admins can create or revoke keys.")).to_be_visible()
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    # the form is not offered, so post it by hand, with a valid CSRF token: the server refuses it
    page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post"; form.action = "/keys/";
            for (const [name, value] of [["name", "sneaky"],
                 ["csrfmiddlewaretoken", document.querySelector("[name=csrfmiddlewaretoken]").value]]) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
        }"""
    )
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert ApiKey.objects.filter(account=account).count() == keys_before
    shoot(page, screenshots, "forbidden")
    response = page.request.post(
        "/top-up/",
        form={
            "amount_usd": "10",
            "csrfmiddlewaretoken": page.locator("[name=csrfmiddlewaretoken]").first.input_value(),
        },
    )
    assert response.status == 403
    assert not TopUp.objects.filter(account=account).exists()


def test_every_page_on_desktop_and_phone(
    account: Account, open_page: Callable[..., Page], screenshots: Path, live_server: Any
):
    now = timezone.now()
    record(account, spread(list(range(0, 30, 2)), per_day=3, now=now))
    # a closed earlier period with an invoice that Stripe hosts, and a few alerts
    earlier = period_current(account=account, as_of=now - timedelta(days=40))
    BillingPeriod.objects.filter(pk=earlier.pk).update(units_used=Decimal(1800))
    invoice = period_close(period=BillingPeriod.objects.get(pk=earlier.pk), as_of=now)
    Invoice.objects.filter(pk=invoice.pk).update(hosted_invoice_url="https://invoice.stripe.com/i/test_123")
    for kind, subject in [("quota", "Acme Shop has used 75 % of its messages this period"),
                          ("low_balance", "Acme Shop's credit balance is low"), ("test", "Test alert")]:  # fmt: skip
        Alert.objects.create(account=account, kind=kind, threshold=75 if kind == "quota" else 0,
                             period_key=f"{kind}-{now:%Y%m%d}", subject=subject, message="Shown in the browser test.",
                             created_at=now - timedelta(hours=1))  # fmt: skip
    page = open_page()
    phone = open_page(phone=True)
    pages = {
        "plans": ("/plans/", "Plans"),
        "invoices": ("/invoices/", "Invoices"),
        "alerts": ("/alerts/", "Alerts"),
        "usage-all": ("/usage/", "Usage history"),
        "balance-full": ("/", "Balance"),
    }
    for name, (url, heading) in pages.items():
        for view, suffix in ((page, ""), (phone, "-phone")):
            view.goto(url)
            expect(view.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            assert view.evaluate("document.documentElement.scrollWidth") <= (PHONE if suffix else DESKTOP)["width"], (
                f"{url} scrolls sideways at {'phone' if suffix else 'desktop'} width"
            )
            shoot(view, screenshots, f"{name}{suffix}")
    page.goto("/invoices/")
    expect(page.get_by_role("link", name="View on Stripe")).to_have_attribute(
        "href", "https://invoice.stripe.com/i/test_123"
    )
    # sign-in and sign-out pages
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
    shoot(page, screenshots, "signed-out")
    page.goto("/accounts/login/")
    shoot(page, screenshots, "login")
    phone.context.clear_cookies()
    phone.goto(f"{live_server.url}/accounts/login/")
    shoot(phone, screenshots, "login-phone")


def test_an_owner_sees_a_negative_balance_warning(account: Account, open_page: Callable[..., Page], screenshots: Path):
    wallet_adjust(account=account, credits="-262500", reason="usage beyond the funds", actor=None)  # -> -12,500
    page = open_page()
    warning = page.get_by_test_id("negative-balance")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Your balance is below zero: -12,500 credits.")
    expect(warning).to_contain_text("Top up at least 12,500 credits")
    shoot(page, screenshots, "negative-balance")
    warning.get_by_role("link", name="Top up now").click()
    expect(page.get_by_role("heading", name="Top up")).to_be_visible()
    phone = open_page(phone=True)
    expect(phone.get_by_test_id("negative-balance")).to_be_visible()
    shoot(phone, screenshots, "negative-balance-phone")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_an_owner_follows_a_charge_down_to_its_price_version(
    account: Account, open_page: Callable[..., Page], screenshots: Path
):
    now = timezone.now()
    version = model_price_set(
        model=AIModel.objects.get(model_id="gpt-4o-mini"), input_per_million="0.30", output_per_million="1.20",
        effective_from=now - timedelta(days=2), reason="provider price change",
    )  # fmt: skip
    record(account, [(now - timedelta(hours=1), "gpt-4o-mini", "chat", 100_000, 10_000)], prefix="explained")
    event = UsageEvent.objects.get(account=account)
    assert event.price_version_id == version.pk
    page = open_page()
    page.get_by_role("link", name="Usage", exact=True).click()
    page.get_by_role("link", name=f"Explain {event.request_id}").click()
    expect(page.get_by_role("heading", name="Charge explained")).to_be_visible()
    expect(page.get_by_test_id("price-version-id")).to_have_text(f"#{version.pk}")
    expect(page.get_by_test_id("price-version")).to_contain_text("(provider price change)")
    expect(page.get_by_test_id("rates")).to_contain_text("$0.30")
    expect(page.get_by_test_id("charge-steps")).to_contain_text("$0.042")  # $0.03 input + $0.012 output
    shoot(page, screenshots, "charge-explained")
    phone = open_page(phone=True)
    phone.goto(f"/usage/events/{event.pk}/explain/")
    expect(phone.get_by_test_id("price-version-id")).to_have_text(f"#{version.pk}")
    shoot(phone, screenshots, "charge-explained-phone")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
