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
