"""The SDK reads money as Decimal whichever way the server writes it: today's decimal strings without trailing
zeros ("9995.65") and the padded form older servers answered ("9995.650000000000") give the same value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from tokenledger import TokenLedger
from tokenledger.types import Balance, Estimate, build


@pytest.mark.parametrize(
    ("credits", "usd"),
    [("9995.65", "0.99"), ("9995.650000000000", "0.99"), ("9995.6500", "0.990000000000")],
)
def test_balance_parses_either_form_to_the_same_decimal(credits: str, usd: str) -> None:
    balance = build(Balance, {"credits": credits, "held_credits": "0", "usd_equivalent": usd})
    assert balance.credits == Decimal("9995.65") and isinstance(balance.credits, Decimal)
    assert (balance.held_credits, balance.usd_equivalent) == (Decimal(0), Decimal("0.99"))


def test_a_whole_amount_without_a_point_is_read_as_decimal() -> None:
    estimate = build(Estimate, {"cost_usd": "50000", "credits": "0", "charge_usd": "0.15"})
    assert (estimate.cost_usd, estimate.credits, estimate.charge_usd) == (Decimal(50000), Decimal(0), Decimal("0.15"))


@pytest.mark.django_db(transaction=True)
def test_the_live_balance_answers_plain_strings_and_the_sdk_reads_them(ledger: TokenLedger, account: Any) -> None:
    balance = ledger.balance()
    assert (balance.raw["credits"], balance.raw["held_credits"]) == ("10000", "0")
    assert (balance.credits, balance.available_credits) == (Decimal(10000), Decimal(10000))
