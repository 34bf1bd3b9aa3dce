"""Every dashboard page as its people see it: sign-in, balance, top-ups, plans, invoices, keys, alerts."""

# ruff: noqa: F811 - the shared Stripe fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.models import ApiKey, AuditEntry, AutoRecharge, BillingPeriod, Invoice, Subscription, TopUp, Wallet
from billing.services.api_keys import api_key_authenticate
from billing.services.periods import period_close, period_current
from pricing.selectors import catalog_cache_invalidate
from pricing.services import exchange_rate_set
from tests.billing.stripe_samples import Recorded, RecordingStripe, stripe_off, stripe_recorder  # noqa: F401
from tests.dashboard.conftest import NOW, OWNER_EMAIL, OWNER_PASSWORD, client_for, spread
from tests.factories import AccountFactory
from usage.models import Alert

pytestmark = pytest.mark.usefixtures("frozen")


def text(response: Any) -> str:
    """The page's text with tags and runs of white space collapsed, as a person reads it."""
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


# --- sign-in -----------------------------------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(account):
    for url in ["/", "/top-up/", "/plans/", "/usage/", "/usage/export.csv", "/invoices/", "/keys/", "/alerts/"]:
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={url}", url


def test_sign_in_with_username_and_password_then_sign_out_by_post(account):
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode() and 'name="password"' in page.content.decode()
    assert '<label for="id_username">Email</label>' in page.content.decode()
    wrong = client.post("/accounts/login/", {"username": OWNER_EMAIL, "password": "nope"})
    assert wrong.status_code == 200 and "Please enter a correct" in text(wrong)
    signed_in = client.post("/accounts/login/", {"username": OWNER_EMAIL, "password": OWNER_PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"
    assert "250,000" in text(client.get("/"))
    assert client.get("/accounts/logout/").status_code == 405  # signing out is a POST (with its CSRF token)
    out = client.post("/accounts/logout/")
    assert out.status_code == 200 and "Signed out" in text(out)
    assert client.get("/").status_code == 302


def test_someone_without_an_account_is_told_so(db):
    from tests.factories import UserFactory

    response = client_for(UserFactory.create()).get("/")
    assert response.status_code == 403 and "not a member of any account" in text(response)


# --- balance -----------------------------------------------------------------------------------------------------


def test_balance_shows_credits_money_rates_and_holds(owner_client, account):
    Wallet.objects.filter(account=account).update(held=Decimal("1234.5"))
    page = text(owner_client.get("/"))
    assert "250,000 credits" in page
    assert "Worth $25.00" in page
    assert "Held by requests in flight 1,235" in page and "Available 248,766" in page
    assert "Rate: 10,000 credits per US dollar, since 1 Jan 2024." in page
    assert "In ZAR" not in page  # a USD account shows no second currency


def test_balance_in_the_display_currency_with_its_rate_and_date(catalog, frozen):
    exchange_rate_set(currency="ZAR", rate=Decimal("18.25"), effective_from=NOW - timedelta(days=3), reason="test")
    catalog_cache_invalidate()  # the service does it on commit, which a test inside a transaction never reaches
    account = AccountFactory.create(plan="jive", credits="1000000", display_currency="ZAR",
                                    owner_email="zar@example.com", owner_password="pw-zar-12345")  # fmt: skip
    from django.contrib.auth.models import User

    page = text(client_for(User.objects.get(username="zar@example.com")).get("/"))
    assert "Worth $100.00" in page
    assert "In ZAR R 1,825.00" in page
    assert "1 USD = 18.25 ZAR, since 18 Nov 2026." in page
    assert account.display_currency == "ZAR"


def test_low_balance_warning_with_a_top_up_button_for_writers_only(owner_client, viewer_client, account):
    account.low_balance_threshold = Decimal(300_000)
    account.save()
    owner_page = owner_client.get("/").content.decode()
    assert "Your balance is low." in owner_page and "below your warning level of 300,000" in owner_page
    assert re.search(r'<a class="button" href="/top-up/">Top up now</a>', owner_page)
    viewer_page = viewer_client.get("/").content.decode()
    assert "Your balance is low." in viewer_page and "Top up now" not in viewer_page
    assert "Ask an owner or admin" in viewer_page
    account.low_balance_threshold = Decimal(1000)
    account.save()
    assert "Your balance is low." not in owner_client.get("/").content.decode()


def test_period_usage_against_the_quota_with_its_status(owner_client, account, recorded):
    recorded(spread([0, 1, 2, 3, 4], per_day=2))  # 10 messages of the Starter plan's 1,000
    page = owner_client.get("/").content.decode()
    assert re.search(r"<strong>10</strong> of 1,000 messages used", page)
    assert 'data-testid="usage-status">ok<' in page and 'aria-valuenow="1"' in page
    BillingPeriod.objects.filter(account=account, start__lte=NOW, end__gt=NOW).update(units_used=Decimal(950))
    page = owner_client.get("/").content.decode()
    assert 'data-testid="usage-status">high<' in page and "95 % used · 50 messages left" in text(owner_client.get("/"))
    BillingPeriod.objects.filter(account=account, start__lte=NOW, end__gt=NOW).update(units_used=Decimal(1500))
    page = owner_client.get("/").content.decode()
    assert 'data-testid="usage-status">exceeded<' in page
    assert 'style="width: 100%"' in page  # the bar stops at full


def test_daily_chart_has_a_bar_for_each_day_with_usage(owner_client, recorded):
    recorded(spread([0, 3, 4, 10, 29], per_day=2) + spread([40 - 8], per_day=1))  # day 32: outside the 30 days
    page = owner_client.get("/").content.decode()
    chart = page.split('data-testid="daily-chart">')[1].split("</figure>")[0]
    assert chart.count('<rect class="bar"') == 5
    assert "<title>Nov 21: " in chart and "<title>Oct 23: " in chart and "<title>Oct 20" not in chart
    assert "usage on 5 of them" in text(owner_client.get("/"))


def test_breakdown_by_model_and_by_operation(owner_client, recorded):
    recorded(spread([1, 2], per_day=3, model="gpt-4o-mini", operation="chat"))
    recorded(spread([1], per_day=2, model="claude-3-5-haiku", operation="summarize"), prefix="haiku")
    by_model = owner_client.get("/").content.decode().split('data-testid="breakdown-chart">')[1].split("</figure>")[0]
    assert by_model.count('<rect class="bar"') == 2 and ">gpt-4o-mini<" in by_model and ">claude-3-5-haiku<" in by_model
    by_operation = owner_client.get("/?by=operation").content.decode()
    chart = by_operation.split('data-testid="breakdown-chart">')[1].split("</figure>")[0]
    assert ">chat<" in chart and ">summarize<" in chart and "By operation" in by_operation


def test_estimated_bill_and_a_cheaper_plan_recommended(owner_client, account, recorded):
    recorded(spread([1], per_day=1))
    # 20.5 of November's 30 days gone with 2,050 messages: 3,000 by the end at this pace
    BillingPeriod.objects.filter(account=account, start__lte=NOW, end__gt=NOW).update(units_used=Decimal(2050))
    page = text(owner_client.get("/"))
    # Starter: $5 + (3,000 - 1,000 included) x $0.00015 = $5.30; Enterprise: 3,000 x $0.00005 = $0.15
    assert "Estimated bill $5.30 At this pace by 1 Dec (3,000 messages)." in page
    assert "Plan fee $5.00 Overage so far $0.16 Monthly cap $50.00 So far $5.16" in page  # 1,050 x $0.00015
    assert "Save $5.15 a month on the Enterprise plan: $0.15 instead of $5.30 for this usage." in page


def test_no_recommendation_on_the_cheapest_plan(catalog, frozen):
    AccountFactory.create(plan="jive", credits="1000", owner_email="jive@example.com", owner_password="pw-jive-1234")
    from django.contrib.auth.models import User

    client = client_for(User.objects.get(username="jive@example.com"))
    page = text(client.get("/"))
    assert "No usage yet this period." in page and "Save " not in page


def test_balance_page_reads_counters_and_rollups_never_the_events(owner_client, recorded):
    recorded(spread(list(range(30)), per_day=2))
    owner_client.get("/")  # warm the catalog cache
    with CaptureQueriesContext(connection) as queries:
        response = owner_client.get("/")
    assert response.status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in sql if "usage_usageevent" in s], "the balance page must not read the events"
    assert len(sql) <= 16, sql


# --- top-ups -----------------------------------------------------------------------------------------------------


def test_top_up_says_stripe_is_not_configured_and_offers_nothing(owner_client, account, stripe_off):
    page = owner_client.get("/top-up/").content.decode()
    assert "Stripe is not configured" in page
    assert "Continue to payment" not in page and 'name="amount_usd"' not in page and "Auto-recharge" not in page
    response = owner_client.post("/top-up/", {"amount_usd": "10"})
    assert response.status_code == 503 and "Stripe is not configured" in response.content.decode()
    assert not TopUp.objects.exists()
    plans = owner_client.get("/plans/").content.decode()
    assert "Stripe is not configured" in plans and "Subscribe to" not in plans and "Switch to" not in plans


def _checkout(stripe: RecordingStripe) -> None:
    def create(req: Recorded) -> dict[str, Any]:
        session_id = stripe.next_id("cs")
        return {"id": session_id, "object": "checkout.session", "mode": req.form["mode"],
                "url": f"https://checkout.stripe.com/c/pay/{session_id}"}  # fmt: skip

    stripe.on("POST", "/v1/checkout/sessions", create)


def test_top_up_packs_and_custom_amount_go_to_stripe_checkout(owner_client, owner, account, stripe_recorder):
    _checkout(stripe_recorder)
    page = text(owner_client.get("/top-up/"))
    for pack, pack_credits in [("$5.00", "50,000"), ("$10.00", "100,000"), ("$25.00", "250,000"),
                               ("$50.00", "500,000"), ("$100.00", "1,000,000")]:  # fmt: skip
        assert f"{pack} {pack_credits} credits" in page
    assert "Between $5.00 and $500.00" in page
    response = owner_client.post("/top-up/", {"amount_usd": "10"})
    topup = TopUp.objects.get(account=account)
    assert response.status_code == 302 and response["Location"] == topup.checkout_url
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test")
    assert (topup.status, topup.amount_usd, topup.credits, topup.created_by) == ("pending", 10, 100_000, owner)
    assert stripe_recorder.only("POST", "/v1/checkout/sessions").idempotency_key == f"topup:{topup.pk}"
    custom = owner_client.post("/top-up/", {"amount_usd": "12.34", "save_payment_method": "on"})
    assert custom.status_code == 302
    second = TopUp.objects.filter(account=account).latest("id")
    assert (second.amount_usd, second.credits, second.save_payment_method) == (Decimal("12.34"), 123_400, True)
    listed = text(owner_client.get("/top-up/"))
    assert "Waiting for payment" in listed and "$12.34 123,400" in listed


@pytest.mark.parametrize(("amount", "message"), [("4.99", "between 5 and 500"), ("500.01", "between 5 and 500")])
def test_top_up_out_of_range_shows_the_services_message(owner_client, account, stripe_recorder, amount, message):
    _checkout(stripe_recorder)
    response = owner_client.post("/top-up/", {"amount_usd": amount})
    assert response.status_code == 400 and message in response.content.decode()
    assert not TopUp.objects.filter(status="pending").exists()


def test_auto_recharge_settings(owner_client, account, stripe_recorder):
    refused = owner_client.post("/top-up/auto-recharge/", {"enabled": "on", "threshold_credits": "5000",
                                                           "amount_usd": "10"})  # fmt: skip
    assert refused.status_code == 400 and "auto-recharge needs a saved card" in refused.content.decode()
    AutoRecharge.objects.create(account=account, stripe_payment_method_id="pm_card_visa")
    saved = owner_client.post("/top-up/auto-recharge/", {"enabled": "on", "threshold_credits": "5000",
                                                         "amount_usd": "10"})  # fmt: skip
    assert saved.status_code == 302
    row = AutoRecharge.objects.get(account=account)
    assert (row.enabled, row.threshold_credits, row.amount_usd) == (True, 5000, 10)
    assert "A card is saved for auto-recharge." in owner_client.get("/top-up/").content.decode()
    owner_client.post("/top-up/auto-recharge/", {"threshold_credits": "5000", "amount_usd": "10"})
    assert not AutoRecharge.objects.get(account=account).enabled


def test_checkout_returns_to_success_and_cancel_pages(owner_client, account):
    topup = TopUp.objects.create(account=account, amount_usd=Decimal(25), amount_cents=2500, credits=Decimal(250_000),
                                 rate=Decimal(10_000), stripe_checkout_session_id="cs_test_1", created_at=NOW)  # fmt: skip
    back = owner_client.get("/?checkout=success&session_id=cs_test_1")
    assert back.status_code == 302 and back["Location"] == "/top-up/success/?session_id=cs_test_1"
    page = text(owner_client.get(back["Location"]))
    assert "Your payment of $25.00 for 250,000 credits is being confirmed by Stripe" in page
    TopUp.objects.filter(pk=topup.pk).update(status="paid")
    assert "is confirmed: the credits are in your balance" in text(owner_client.get(back["Location"]))
    canceled = owner_client.get("/?checkout=canceled")
    assert canceled["Location"] == "/top-up/canceled/"
    assert "Nothing was charged." in text(owner_client.get("/top-up/canceled/"))


# --- plans -------------------------------------------------------------------------------------------------------


def test_plans_list_fee_included_units_overage_and_cap(owner_client, stripe_off):
    page = text(owner_client.get("/plans/"))
    assert "Starter your plan $5.00 a month Included 1,000 messages Beyond that $0.00015 per message" in page
    assert "Monthly cap $50.00" in page
    assert "Professional $15.00 a month Included 10,000 messages" in page
    assert "Enterprise $0.00 a month Included none: every message is billed" in page
    assert "Business $0.00 a month Included 200,000 tokens Beyond that $0.0008 per token" in page
    assert "Your subscription Plan Starter Status Active" in page


def test_subscribe_goes_to_checkout_and_change_and_cancel_go_to_stripe(owner_client, account, stripe_recorder):
    _checkout(stripe_recorder)
    page = owner_client.get("/plans/").content.decode()
    assert "Subscribe to Professional" in page and "Not sold online" in page  # credit plans have no Stripe price
    response = owner_client.post("/plans/subscribe/", {"plan": "professional", "interval": "month"})
    assert response.status_code == 302 and response["Location"].startswith("https://checkout.stripe.com/")
    assert stripe_recorder.only("POST", "/v1/checkout/sessions").form["line_items[0][price]"] == (
        "price_professional_monthly"
    )
    unknown = owner_client.post("/plans/subscribe/", {"plan": "nope", "interval": "month"})
    assert unknown.status_code == 400 and "unknown plan" in unknown.content.decode()
    # with a live Stripe subscription: a switch (prorated) and a cancel
    Subscription.objects.filter(account=account).update(stripe_subscription_id="sub_test_1")
    remote = {"id": "sub_test_1", "object": "subscription", "status": "active",
              "items": {"data": [{"id": "si_1", "price": {"id": "price_starter_monthly"}}]}}  # fmt: skip
    stripe_recorder.on("GET", "/v1/subscriptions/sub_test_1", remote)
    stripe_recorder.on("POST", "/v1/subscriptions/sub_test_1", {**remote, "cancel_at_period_end": True})
    assert "Switch to Professional" in owner_client.get("/plans/").content.decode()
    switched = owner_client.post("/plans/subscribe/", {"plan": "professional", "interval": "month"})
    assert switched.status_code == 302 and switched["Location"] == "/plans/"
    changed = [r for r in stripe_recorder.requests if r.method == "POST" and r.path == "/v1/subscriptions/sub_test_1"]
    assert changed[0].form["items[0][price]"] == "price_professional_monthly"
    canceled = owner_client.post("/plans/cancel/", {"at_period_end": "1"}, follow=True)
    assert "Your subscription ends at the end of the current period." in text(canceled)
    assert AuditEntry.objects.filter(account=account, action="stripe_subscription_cancel").exists()


# --- invoices ----------------------------------------------------------------------------------------------------


def test_invoices_show_status_amounts_and_the_stripe_link(owner_client, account):
    october = period_current(account=account, as_of=datetime(2026, 10, 15, tzinfo=UTC))
    BillingPeriod.objects.filter(pk=october.pk).update(units_used=Decimal(3000))
    invoice = period_close(period=BillingPeriod.objects.get(pk=october.pk), as_of=NOW)
    Invoice.objects.filter(pk=invoice.pk).update(hosted_invoice_url="https://invoice.stripe.com/i/acct_1/test_1")
    response = owner_client.get("/invoices/")
    page = text(response)
    # Starter: $5 + 2,000 x $0.00015 = $5.30
    assert "1 Oct 2026 \N{EN DASH} 1 Nov 2026 starter Open $5.00 $0.30 $5.30 View on Stripe" in page
    assert 'href="https://invoice.stripe.com/i/acct_1/test_1"' in response.content.decode()


def test_no_invoices_yet(owner_client):
    assert "No invoices yet" in text(owner_client.get("/invoices/"))


# --- API keys ----------------------------------------------------------------------------------------------------


def test_create_a_key_shown_once_then_revoke_it(owner_client, owner, account):
    response = owner_client.post("/keys/", {"name": "production"})
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'id="new-key-value" class="mono" type="text" value="(tl_[^"]+)"', response.content.decode())
    assert secret is not None
    key = api_key_authenticate(secret.group(1))
    assert key is not None and key.account_id == account.pk and key.name == "production" and key.created_by == owner
    listing = owner_client.get("/keys/").content.decode()
    assert secret.group(1) not in listing and f"tl_{key.prefix}_…" in listing
    assert AuditEntry.objects.filter(action="api_key_issued", object_key=key.prefix, ip="127.0.0.1").exists()
    revoked = owner_client.post(f"/keys/{key.pk}/revoke/")
    assert revoked.status_code == 302
    assert api_key_authenticate(secret.group(1)) is None
    assert "revoked" in text(owner_client.get("/keys/"))


def test_keys_show_when_they_were_last_used(owner_client, account):
    ApiKey.objects.filter(account=account).update(last_used_at=NOW - timedelta(hours=3))
    assert "21 Nov 2026 09:00" in text(owner_client.get("/keys/"))


# --- alerts ------------------------------------------------------------------------------------------------------


def test_alerts_page_lists_recent_alerts_and_where_they_go(owner_client, account):
    Alert.objects.create(account=account, kind="low_balance", threshold=5000, period_key="2026-11-01",
                         subject="Acme Shop's credit balance is low", message="1,000 credits are available.",
                         created_at=NOW)  # fmt: skip
    page = text(owner_client.get("/alerts/"))
    assert "Acme Shop's credit balance is low" in page and "Low Balance" in page
    assert OWNER_EMAIL in page and "No webhook is set." in page


def test_alert_settings_are_saved_through_the_service(owner_client, account):
    response = owner_client.post("/alerts/settings/", {"low_balance_threshold": "5000",
                                                       "alert_webhook_url": "https://hooks.example.com/tl",
                                                       "display_currency": "ZAR"})  # fmt: skip
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.low_balance_threshold, account.alert_webhook_url, account.display_currency) == (
        5000,
        "https://hooks.example.com/tl",
        "ZAR",
    )
    entry = AuditEntry.objects.get(account=account, action="account_settings_changed")
    assert entry.ip == "127.0.0.1" and entry.after is not None and entry.after["display_currency"] == "ZAR"
    bad = owner_client.post("/alerts/settings/", {"low_balance_threshold": "-1", "alert_webhook_url": "ftp://x",
                                                  "display_currency": "USD"})  # fmt: skip
    assert bad.status_code == 400
    assert "Ensure this value is greater than or equal to 0." in bad.content.decode()
    assert "Enter a valid URL." in bad.content.decode()


def test_send_a_test_alert(owner_client, account):
    response = owner_client.post("/alerts/test/", follow=True)
    assert f"A test alert is on its way to {OWNER_EMAIL}" in text(response)
    assert Alert.objects.filter(account=account, kind="test").count() == 1
