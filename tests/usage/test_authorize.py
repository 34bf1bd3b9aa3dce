from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing.models import Account, BillingPeriod, Subscription, Wallet
from billing.services.accounts import account_set_status
from billing.services.periods import period_current
from pricing.models import AIModel
from pricing.services import model_set_active
from tests.factories import AccountFactory
from usage.models import Reservation
from usage.services.authorization import reservations_expire

pytestmark = pytest.mark.usefixtures("catalog")


def _ask(client, request_id="q1", **fields):
    body = {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "max_output_tokens": 500, **fields}
    response = client.post("/api/usage/authorize", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_allowed_call_holds_its_worst_case(jive_account, api_client_for):
    client = api_client_for(jive_account)
    body = _ask(client)
    assert body["allowed"] is True
    assert body["held_credits"] == "1.5"
    assert Decimal(body["remaining"]) == Decimal("9998.5")
    wallet = Wallet.objects.get(account=jive_account)
    assert (wallet.balance, wallet.held) == (Decimal(10000), Decimal("1.5"))
    balance = client.get("/api/billing/balance").json()
    assert (balance["held_credits"], balance["available_credits"]) == ("1.5", "9998.5")


def test_recording_settles_the_hold_and_debits_the_actual(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _ask(client, "q1", max_output_tokens=2000)  # holds 3 credits
    client.post(
        "/api/usage/events",
        {"request_id": "q1", "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 100},
        format="json",
    )
    wallet = Wallet.objects.get(account=jive_account)
    assert wallet.held == 0
    assert wallet.balance == Decimal("10000") - Decimal("1.1")
    assert Reservation.objects.get(request_id="q1").status == "settled"


def test_a_retried_authorize_returns_the_same_reservation(jive_account, api_client_for):
    client = api_client_for(jive_account)
    first, second = _ask(client, "same"), _ask(client, "same")
    assert first["reservation_id"] == second["reservation_id"]
    assert Wallet.objects.get(account=jive_account).held == Decimal("1.5")
    # what is left now, its own hold counted, as the first answer said (not null)
    assert Decimal(first["remaining"]) == Decimal(second["remaining"]) == Decimal("9998.5")
    _ask(client, "other")
    assert Decimal(_ask(client, "same")["remaining"]) == Decimal("9997")


@pytest.mark.parametrize("plan", ["free", "basic"])  # included credits (and no wallet), a token quota
def test_remaining_counts_what_the_plan_includes_and_a_retry_answers_it_as_it_stands(plan, catalog, api_client_for):
    client = api_client_for(AccountFactory.create(plan=plan))
    first = _ask(client, "same")
    units = Decimal("1.5") if plan == "free" else Decimal(1500)  # credits or tokens the call holds
    assert Decimal(first["remaining"]) == Decimal(10000) - units  # both include 10,000
    assert _ask(client, "same")["remaining"] == first["remaining"]
    _ask(client, "other")
    assert Decimal(_ask(client, "same")["remaining"]) == Decimal(10000) - 2 * units


def _cheap_embedding_model() -> None:
    """An embedding model cheaper than any chat model: it always "fits", and cannot answer a chat call."""
    from pricing.services import model_create, model_price_set

    model = model_create(model_id="embed-cheap", display_name="Cheap embeddings", provider="openai",
                         allowed_tiers=["free", "jive", "jigga"], mode="embedding")  # fmt: skip
    model_price_set(model=model, input_per_million="0.01", output_per_million="0",
                    effective_from=timezone.now() - timedelta(days=1), reason="test")  # fmt: skip


def test_insufficient_credits_lists_cheaper_models_that_fit(catalog, api_client_for):
    _cheap_embedding_model()
    account = AccountFactory.create(plan="jive", credits="3")
    body = _ask(api_client_for(account), model="claude-3-5-haiku", input_tokens=1000, max_output_tokens=500)
    # claude: 0.0008 + 0.002 = $0.0028 = 28 credits; only 3 are available
    assert body["allowed"] is False
    assert body["reason"] == "insufficient_credits"
    fits = [a["model_id"] for a in body["alternatives"]]
    assert fits and fits[0] == "qwen-3-32b"
    assert "claude-3-5-haiku" not in fits
    assert all(Decimal(a["credits"]) <= 3 for a in body["alternatives"])
    assert not Reservation.objects.filter(account=account).exists()
    # only chat models: an embedding model (cheap, and so always "fitting") cannot serve a chat call
    modes = dict(AIModel.objects.filter(model_id__in=fits).values_list("model_id", "mode"))
    assert set(modes.values()) == {"chat"} and "embed-cheap" not in fits, modes
    assert body["message"] == "This call may cost 28 credits; 3 are available."


def test_suspended_account_is_denied(jive_account, api_client_for):
    account_set_status(account=jive_account, status=Account.Status.SUSPENDED)
    assert _ask(api_client_for(jive_account))["reason"] == "account_suspended"


def test_past_due_is_denied_only_after_the_grace_period(jive_account, api_client_for):
    client = api_client_for(jive_account)
    Subscription.objects.filter(account=jive_account).update(
        status="past_due", past_due_since=timezone.now() - timedelta(days=3)
    )
    assert _ask(client, "a")["allowed"] is True
    Subscription.objects.filter(account=jive_account).update(past_due_since=timezone.now() - timedelta(days=8))
    assert _ask(client, "b")["reason"] == "account_past_due"


def test_model_not_allowed_for_the_tier(catalog, api_client_for):
    free = AccountFactory.create(plan="free")
    assert _ask(api_client_for(free), model="qwen-3-235b-a22b-instruct-2507")["reason"] == "model_not_allowed"


def test_unknown_or_inactive_model_is_a_400(jive_account, api_client_for, django_capture_on_commit_callbacks):
    client = api_client_for(jive_account)
    response = client.post(
        "/api/usage/authorize",
        {"request_id": "x", "model": "gpt-9", "input_tokens": 1, "max_output_tokens": 1},
        format="json",
    )
    assert (response.status_code, response.json()["error"]) == (400, "unknown_model")
    with django_capture_on_commit_callbacks(execute=True):  # the catalog cache refreshes on commit
        model_set_active(model=AIModel.objects.get(model_id="qwen-3-32b"), is_active=False)
    response = client.post(
        "/api/usage/authorize",
        {"request_id": "y", "model": "qwen-3-32b", "input_tokens": 1, "max_output_tokens": 1},
        format="json",
    )
    assert (response.status_code, response.json()["error"]) == (400, "model_inactive")


@pytest.mark.parametrize(
    "body",
    [
        {"model": "qwen-3-32b", "input_tokens": 1, "max_output_tokens": 1},
        {"request_id": "x", "model": "qwen-3-32b", "input_tokens": -1, "max_output_tokens": 1},
        {"request_id": "x", "model": "qwen-3-32b", "input_tokens": "many", "max_output_tokens": 1},
        {"request_id": "x" * 129, "model": "qwen-3-32b", "input_tokens": 1, "max_output_tokens": 1},
    ],
)
def test_bad_authorize_input_is_400_with_fields(jive_account, api_client_for, body):
    response = api_client_for(jive_account).post("/api/usage/authorize", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert response.json()["fields"]


def test_message_limit_for_the_operation(jive_account, api_client_for):
    body = _ask(api_client_for(jive_account), operation_type="chat_message", input_tokens=10_001, max_output_tokens=10)
    assert body["reason"] == "message_limit_exceeded"


def test_daily_cost_limit_for_the_operation(catalog, api_client_for):
    account = AccountFactory.create(plan="jive", credits="1000000")
    client = api_client_for(account)
    # chat_message allows $5 a day; each claude call of 1,000 + 2,000 tokens may cost $0.0088
    client.post(
        "/api/usage/events",
        {
            "events": [
                {
                    "request_id": f"e{n}",
                    "model": "claude-3-5-haiku",
                    "input_tokens": 10_000,
                    "output_tokens": 2_000,
                    "operation_type": "chat_message",
                }
                for n in range(312)
            ]
        },
        format="json",
    )  # 312 x $0.016 = $4.992 so far
    body = _ask(
        client, model="claude-3-5-haiku", operation_type="chat_message", input_tokens=1000, max_output_tokens=2000
    )
    assert body["reason"] == "daily_cost_limit"
    assert _ask(
        client, "cheap", model="qwen-3-32b", operation_type="chat_message", input_tokens=100, max_output_tokens=10
    )["allowed"]


def test_quota_hard_limit_on_the_free_plan(catalog, api_client_for):
    account = AccountFactory.create(plan="free")
    period = period_current(account=account, as_of=timezone.now())
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal("9999"))
    assert _ask(api_client_for(account))["reason"] == "quota_exceeded"  # needs 1.5 credits, 1 left


def test_token_plan_stops_beyond_its_max_overage(catalog, api_client_for):
    account = AccountFactory.create(plan="basic")  # 10,000 tokens, overage up to 50 %
    period = period_current(account=account, as_of=timezone.now())
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal("13000"))
    client = api_client_for(account)
    assert _ask(client, "a", input_tokens=1000, max_output_tokens=1000)["allowed"] is True  # 15,000: at the edge
    assert _ask(client, "b", input_tokens=1, max_output_tokens=0)["reason"] == "quota_exceeded"  # the hold counts


def test_spend_cap(catalog, api_client_for):
    account = AccountFactory.create(plan="starter")  # $5 + $0.00015 per message beyond 1,000, cap $50
    period = period_current(account=account, as_of=timezone.now())
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal("300000"))  # 5 + 44.85 = 49.85
    client = api_client_for(account)
    assert _ask(client, "a")["allowed"] is True
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal("301000"))  # 50.00
    assert _ask(client, "b")["reason"] == "spend_cap_reached"


def test_expired_holds_are_released(jive_account, api_client_for):
    _ask(api_client_for(jive_account), "q1")
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert reservations_expire(as_of=timezone.now()) == 1
        assert reservations_expire(as_of=timezone.now()) == 0
    assert Wallet.objects.get(account=jive_account).held == 0
    assert Reservation.objects.get(request_id="q1").status == "expired"


def test_the_plans_requests_per_hour_answer_429_with_retry_after(catalog, api_client_for):
    account = AccountFactory.create(plan="free", credits="100")  # 100 requests an hour
    client = api_client_for(account)
    for n in range(100):
        assert (
            client.post(
                "/api/usage/authorize",
                {"request_id": f"r{n}", "model": "qwen-3-32b", "input_tokens": 1, "max_output_tokens": 1},
                format="json",
            ).status_code
            == 200
        )
    response = client.post(
        "/api/usage/authorize",
        {"request_id": "r100", "model": "qwen-3-32b", "input_tokens": 1, "max_output_tokens": 1},
        format="json",
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"] == "rate_limited"
    # recording what already happened is never throttled
    assert (
        client.post(
            "/api/usage/events",
            {"request_id": "late", "model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1},
            format="json",
        ).status_code
        == 201
    )


def test_estimate_counts_tokens_by_the_providers_characters_per_token(jive_account, api_client_for):
    client = api_client_for(jive_account)
    body = client.post(
        "/api/usage/estimate",
        {"model": "claude-3-5-haiku", "text": "x" * 7000, "max_output_tokens": 1000},
        format="json",
    ).json()
    assert body["input_tokens"] == 2000  # 3.5 characters per token for Anthropic
    assert body["cost_usd"] == "0.0056"  # 2000 x 0.80/1M + 1000 x 4.00/1M
    messages = [
        {"role": "user", "content": "y" * 400},
        {"role": "assistant", "content": [{"type": "text", "text": "z" * 399}]},
    ]
    body = client.post("/api/usage/estimate", {"model": "gpt-4o-mini", "messages": messages}, format="json").json()
    assert body["input_tokens"] == 200  # 800 characters (with the newline) / 4
