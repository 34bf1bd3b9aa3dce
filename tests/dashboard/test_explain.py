"""Issue 21: explain a charge, from an event or an invoice, down to the price version that made it; owners only,
and only their own account's events and invoices."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from billing.models import Account, Invoice
from billing.services.periods import period_close, period_current
from pricing.models import AIModel, ModelPrice
from pricing.selectors import catalog_cache_invalidate
from pricing.services import model_price_set
from tests.dashboard.conftest import NOW, client_for, record
from tests.factories import AccountFactory
from usage.models import UsageEvent

pytestmark = pytest.mark.usefixtures("frozen")

EARLY = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
LATE = datetime(2026, 10, 28, 9, 0, tzinfo=UTC)
CHANGE = datetime(2026, 10, 25, tzinfo=UTC)


def _text(html: str) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
    return text.replace(" ,", ",").replace(" .", ".")


@pytest.fixture
def repriced(account: Account) -> tuple[ModelPrice, ModelPrice]:
    """gpt-4o-mini at its seed price until 25 Oct, then a new version at double; one request on each side."""
    model = AIModel.objects.get(model_id="gpt-4o-mini")
    before = ModelPrice.objects.filter(model=model).order_by("-effective_from").first()
    assert before is not None
    after = model_price_set(
        model=model, input_per_million="0.30", output_per_million="1.20", effective_from=CHANGE,
        reason="provider price change", cached_input_per_million="0.15",
    )  # fmt: skip
    catalog_cache_invalidate()
    record(account, [(EARLY, "gpt-4o-mini", "chat", 100_000, 10_000), (LATE, "gpt-4o-mini", "chat", 100_000, 10_000)])
    return before, after


def _event(account: Account, at: datetime) -> UsageEvent:
    return UsageEvent.objects.get(account=account, occurred_at=at)


def test_an_event_is_explained_down_to_its_price_version(account: Account, owner_client: Client, repriced):
    before, after = repriced
    early, late = _event(account, EARLY), _event(account, LATE)
    assert (early.price_version_id, late.price_version_id) == (before.pk, after.pk)
    page = _text(owner_client.get(f"/usage/events/{late.pk}/explain/").content.decode())
    assert f"gpt-4o-mini, price version #{after.pk}, in force from 2026-10-25 00:00 UTC (provider price change)" in page
    assert "input_per_million $0.30 USD per 1M tokens" in page
    assert "output_per_million $1.20 USD per 1M tokens" in page
    assert "The catalog's version at the request's time is the one recorded when it was rated." in page
    # 100,000 input at $0.30/M = $0.03, 10,000 output at $1.20/M = $0.012
    assert "uncached input tokens at the version's rate $0.03" in page
    assert "output tokens at the version's rate $0.012" in page
    old = _text(owner_client.get(f"/usage/events/{early.pk}/explain/").content.decode())
    assert f"price version #{before.pk}" in old and f"#{after.pk}" not in old


def test_the_usage_history_links_each_event_to_its_explanation_for_owners(
    account: Account, owner_client: Client, admin_user: User, repriced
):
    early = _event(account, EARLY)
    history = owner_client.get("/usage/", {"start": "2026-10-01", "end": "2026-10-31"}).content.decode()
    assert f'href="/usage/events/{early.pk}/explain/"' in history
    admin_history = client_for(admin_user).get("/usage/", {"start": "2026-10-01", "end": "2026-10-31"})
    assert "/explain/" not in admin_history.content.decode()


def test_an_invoice_is_explained_by_model_and_price_version(account: Account, owner_client: Client, repriced):
    before, after = repriced
    # the account opened on NOW, so its earlier events belong to its first period, closed here after its end
    period = _event(account, EARLY).period
    with time_machine.travel(period.end + timedelta(hours=1), tick=False):
        invoice = period_close(period=period, as_of=period.end)
    invoices = owner_client.get("/invoices/").content.decode()
    assert f'href="/invoices/{invoice.pk}/explain/"' in invoices
    html = owner_client.get(f"/invoices/{invoice.pk}/explain/").content.decode()
    assert f'data-version="{before.pk}"' in html and f'data-version="{after.pk}"' in html
    page = _text(html)
    assert "Plan fee $5.00" in page
    late = _event(account, LATE)
    assert f'href="/usage/events/{late.pk}/explain/"' in html
    assert f"#{after.pk} from 2026-10-25 input_per_million $0.30" in page
    assert (
        sum(e.charge_usd for e in UsageEvent.objects.filter(account=account))
        == Invoice.objects.get(pk=invoice.pk).charge_usd
    )


def test_only_owners_see_explanations(account: Account, viewer: User, admin_user: User, repriced):
    event = _event(account, EARLY)
    for user in (viewer, admin_user):
        response = client_for(user).get(f"/usage/events/{event.pk}/explain/")
        assert response.status_code == 403
        assert "Only an owner of Acme Shop can open this page" in response.content.decode()
        assert "price version" not in response.content.decode()


def test_no_other_accounts_event_or_invoice(account: Account, owner_client: Client, catalog):
    other = AccountFactory.create(name="Other", plan="starter", credits="100000", owner_email="other@example.com")
    record(other, [(EARLY, "gpt-4o-mini", "chat", 1_000, 100)], prefix="theirs")
    theirs = UsageEvent.objects.get(account=other)
    invoice = period_close(period=period_current(account=other, as_of=EARLY), as_of=NOW)
    assert owner_client.get(f"/usage/events/{theirs.pk}/explain/").status_code == 404
    assert owner_client.get(f"/invoices/{invoice.pk}/explain/").status_code == 404
    assert owner_client.get("/usage/events/999999/explain/").status_code == 404
    mine = client_for(User.objects.get(username="other@example.com"))
    assert mine.get(f"/usage/events/{theirs.pk}/explain/").status_code == 200


def test_signed_out_is_sent_to_sign_in(account: Account, repriced):
    event = _event(account, EARLY)
    response = Client().get(f"/usage/events/{event.pk}/explain/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_an_explained_charge_is_not_shown_as_free(account: Account, owner_client: Client, repriced):
    event = _event(account, LATE)
    page = _text(owner_client.get(f"/usage/events/{event.pk}/explain/").content.decode())
    assert f"{Decimal(event.credits).quantize(Decimal(1)):,} credits" in page
