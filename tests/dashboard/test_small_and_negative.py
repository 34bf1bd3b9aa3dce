"""Issue 21: a small charge never reads as free, and a balance below zero says so and what to do."""

from __future__ import annotations

import re
from decimal import Decimal

from django.test import Client

from billing.models import Account, Membership
from billing.services.wallet import wallet_adjust
from tests.dashboard.conftest import NOW, add_member, client_for
from usage.models import UsageEvent

CELL = re.compile(r'data-label="Credits" class="num">([^<]+)<')


def test_an_event_under_half_a_credit_shows_its_credits_not_zero(account: Account, owner_client: Client, recorded):
    recorded([(NOW.replace(hour=10), "gpt-4o-mini", "chat", 3, 1)], prefix="tiny")
    event = UsageEvent.objects.get(account=account)
    assert Decimal(0) < event.credits < Decimal("0.5")  # rounded to whole credits it would read 0
    page = owner_client.get("/usage/").content.decode()
    shown = CELL.findall(page)
    assert len(shown) == 1
    assert shown[0] != "0"
    assert Decimal(shown[0]) > 0
    assert abs(Decimal(shown[0]) - event.credits) <= event.credits / 10  # its first significant place, rounded


def _overdraw(account: Account, credits: str) -> None:
    """Usage recorded beyond the funds leaves the wallet below zero; a staff adjustment is the shortest way there."""
    wallet_adjust(account=account, credits=f"-{credits}", reason="usage beyond the funds", actor=None)


def test_a_negative_balance_warns_the_owner_and_offers_a_top_up(account: Account, owner_client: Client):
    _overdraw(account, "262500")  # 250,000 -> -12,500
    page = owner_client.get("/").content.decode()
    assert 'data-testid="negative-balance"' in page
    assert "Your balance is below zero: -12,500 credits." in page
    assert "Top up at least 12,500 credits" in page
    assert 'href="/top-up/"' in page
    assert "Your balance is low" not in page  # one warning, the serious one


def test_a_viewer_sees_the_negative_balance_and_whom_to_ask(account: Account, settings):
    settings.SUPPORT_EMAIL = "help@reseller.example"
    viewer = add_member(account, Membership.Role.VIEWER, "viewer@example.com")
    _overdraw(account, "250001")
    page = client_for(viewer).get("/").content.decode()
    assert "Your balance is below zero: -1 credits." in page
    assert "Ask an owner or admin of Acme Shop (owner@example.com) to top up." in page
    assert "mailto:help@reseller.example" in page
    assert "Top up at least" not in page


def test_a_positive_balance_shows_no_negative_warning(account: Account, owner_client: Client):
    page = owner_client.get("/").content.decode()
    assert 'data-testid="negative-balance"' not in page
