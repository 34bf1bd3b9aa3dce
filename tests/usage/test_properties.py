"""Recording the same events in any order and any batching gives the same counters and balance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import BillingPeriod, Wallet
from tests.factories import AccountFactory
from usage.models import DailyUsage
from usage.services.recording import usage_record_batch

MODELS = ["qwen-3-32b", "gpt-4o-mini", "claude-3-5-haiku", "meta-llama/llama-3.3-70b-instruct"]

event = st.builds(
    lambda model, i, o, c, op: {
        "model": model, "input_tokens": i, "output_tokens": o, "cached_input_tokens": min(c, i), "operation_type": op,
    },
    st.sampled_from(MODELS), st.integers(0, 50_000), st.integers(0, 10_000), st.integers(0, 50_000),
    st.sampled_from(["chat_message", "summary", ""]),
)  # fmt: skip


def _state(account):
    period = BillingPeriod.objects.get(account=account)
    rollups = sorted(
        DailyUsage.objects.filter(account=account).values_list("model_id", "operation_type", "events", "cost_usd")
    )
    return (
        Wallet.objects.get(account=account).balance,
        period.units_used, period.input_tokens, period.output_tokens, period.messages, period.provider_cost_usd,
        rollups,
    )  # fmt: skip


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(event, min_size=1, max_size=25),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(1, 25), max_size=4),
)
def test_order_and_batching_do_not_change_the_totals(catalog, events, order, cuts):
    events = [{**e, "request_id": f"r{n}"} for n, e in enumerate(events)]
    one_go = AccountFactory.create(plan="jive", credits="1000000")
    usage_record_batch(account=one_go, raw_events=events)

    shuffled = list(events)
    order.shuffle(shuffled)
    pieces = AccountFactory.create(plan="jive", credits="1000000")
    start = 0
    for cut in [*sorted(set(cuts)), len(shuffled)]:
        if cut > start:
            usage_record_batch(account=pieces, raw_events=shuffled[start:cut])
            start = cut
    usage_record_batch(account=pieces, raw_events=shuffled)  # a full replay changes nothing

    assert _state(one_go) == _state(pieces)
    assert _state(one_go)[0] <= Decimal(1000000)
