"""The demo's customers and their 60 days of usage, recorded day by day through the recording service.

Each day's events go in as one batch received at the end of that day, so every event lands in the period of its
own time; when a month ends its periods are closed through period_close at 03:00 on the 1st, as the schedule does,
before the next day's usage. The usage is drawn from a random generator seeded with the customer's name, so a fresh
database always gets the same demo. A customer that exists already (by its external id) is left as it is.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from billing.models import Account, BillingPeriod
from billing.services.accounts import account_create
from billing.services.periods import period_close
from usage.services.recording import usage_record_batch

DAYS = 60
RECEIVED_AT = time(23, 55)  # each day's batch arrives at the end of the day
CLOSE_AT = time(3, 0)  # the monthly close on the 1st, as config/schedule.py runs it
UNKNOWN_MODEL = "mistral-medium-3"  # not in the catalog: its events wait in the dead-letter table for a replay


@dataclass(frozen=True)
class ModelMix:
    model: str
    weight: int
    input_tokens: tuple[int, int]
    output_tokens: tuple[int, int]
    cached_share: float = 0.0  # the share of input read from the provider's prompt cache, when cached


@dataclass(frozen=True)
class Customer:
    external_id: str
    name: str
    plan: str
    owner_email: str
    events_per_day: int
    models: tuple[ModelMix, ...]
    operations: tuple[str, ...]
    end_users: int
    display_currency: str = "USD"
    opening_credits: str | None = None
    rejected_per_day: int = 0  # events on a model the catalog lacks, on the last three days


MAIN_OWNER = "owner@demo.example"

CUSTOMERS = (
    Customer(
        external_id="demo-northwind", name="Northwind Support", plan="prepaid", owner_email=MAIN_OWNER,
        events_per_day=35, display_currency="ZAR", opening_credits="150000", end_users=40, rejected_per_day=2,
        operations=("chat_message", "ticket_summary", "reply_draft"),
        models=(
            ModelMix("gpt-4o-mini", 70, (1_500, 6_000), (150, 700), cached_share=0.6),
            ModelMix("claude-3-5-haiku", 20, (2_000, 8_000), (200, 900)),
            ModelMix("meta-llama/llama-3.3-70b-instruct", 10, (1_000, 4_000), (100, 500)),
        ),
    ),
    Customer(
        external_id="demo-pixel-prose", name="Pixel & Prose", plan="starter_tokens", owner_email="owner@pixelprose.example",
        events_per_day=40, end_users=8, operations=("draft_post", "rewrite", "headline"),
        models=(
            ModelMix("qwen-3-235b-a22b-instruct-2507", 50, (2_000, 8_000), (800, 3_000)),
            ModelMix("gpt-4o-mini", 50, (1_000, 5_000), (400, 2_000)),
        ),
    ),
    Customer(
        external_id="demo-lumen-legal", name="Lumen Legal", plan="growth_tokens", owner_email="owner@lumenlegal.example",
        events_per_day=40, end_users=15, operations=("contract_review", "clause_search", "chat_message"),
        models=(
            ModelMix("claude-3-5-haiku", 60, (20_000, 60_000), (800, 2_500), cached_share=0.5),
            ModelMix("gpt-4o-mini", 40, (5_000, 20_000), (300, 1_200)),
        ),
    ),
    Customer(
        external_id="demo-atlas", name="Atlas Analytics", plan="scale_tokens", owner_email="owner@atlas.example",
        events_per_day=60, end_users=25, operations=("report_build", "sql_assist", "anomaly_explain"),
        models=(
            ModelMix("qwen-3-32b", 50, (10_000, 40_000), (1_000, 4_000)),
            ModelMix("meta-llama/llama-3.3-70b-instruct", 30, (8_000, 30_000), (500, 2_500)),
            ModelMix("gpt-4o-mini", 20, (4_000, 12_000), (300, 1_500), cached_share=0.4),
        ),
    ),
)  # fmt: skip


def demo_start(now: datetime) -> datetime:
    """Midnight UTC, DAYS days before today: the demo's first day."""
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC) - timedelta(days=DAYS)


def _day_events(customer: Customer, rng: random.Random, day: datetime, index: int) -> list[dict[str, Any]]:
    """One day's events: more on weekdays, growing over the 60 days, spread over the working day."""
    trend = 0.7 + 0.6 * index / DAYS
    weekday = 1.0 if day.weekday() < 5 else 0.45
    count = max(1, round(customer.events_per_day * trend * weekday * rng.uniform(0.8, 1.2)))
    weights = [mix.weight for mix in customer.models]
    events = []
    for n in range(count):
        mix = rng.choices(customer.models, weights)[0]
        input_tokens = rng.randint(*mix.input_tokens)
        cached = int(input_tokens * mix.cached_share) if mix.cached_share and rng.random() < 0.7 else 0
        user = rng.randrange(customer.end_users)
        occurred = day + timedelta(hours=7) + timedelta(seconds=rng.randrange(16 * 3600))
        events.append({
            "request_id": f"{customer.external_id}-{day:%Y%m%d}-{n:04}",
            "model": mix.model,
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": rng.randint(*mix.output_tokens),
            "operation_type": rng.choice(customer.operations),
            "user": f"user-{user:03}",
            "conversation_id": f"conv-{user:03}-{rng.randrange(1, 6)}",
            "occurred_at": occurred.isoformat(),
        })  # fmt: skip
    return sorted(events, key=lambda event: event["occurred_at"])


def _rejected_events(customer: Customer, day: datetime) -> list[dict[str, Any]]:
    return [
        {
            "request_id": f"{customer.external_id}-{day:%Y%m%d}-new-{n}",
            "model": UNKNOWN_MODEL,
            "input_tokens": 3_000,
            "output_tokens": 400,
            "operation_type": customer.operations[0],
            "user": "user-001",
            "occurred_at": (day + timedelta(hours=15, minutes=n)).isoformat(),
        }
        for n in range(customer.rejected_per_day)
    ]


def _periods_close(account: Account, *, ended_by: datetime, now: datetime) -> None:
    """Close the account's periods that ended by `ended_by`, at 03:00 of that day (never later than now)."""
    as_of = min(ended_by.replace(hour=CLOSE_AT.hour), now)
    for period in BillingPeriod.objects.filter(
        account=account, status=BillingPeriod.Status.OPEN, end__lte=ended_by
    ).order_by("end"):
        period_close(period=period, as_of=as_of)


def customer_seed(customer: Customer, *, now: datetime, password: str | None = None) -> tuple[Account, str] | None:
    """Create the customer with its owner, then record its 60 days; None when it exists already."""
    if Account.objects.filter(external_id=customer.external_id).exists():
        return None
    start = demo_start(now)
    account, api_key = account_create(
        name=customer.name,
        plan_code=customer.plan,
        owner_email=customer.owner_email,
        owner_password=password,
        credits=customer.opening_credits,
        display_currency=customer.display_currency,
        as_of=start,
        external_id=customer.external_id,
        metadata={"demo": True},
    )
    rng = random.Random(customer.external_id)  # demo data, not a secret
    for index in range(DAYS):
        day = start + timedelta(days=index)
        events = _day_events(customer, rng, day, index)
        if index >= DAYS - 3:
            events += _rejected_events(customer, day)
        usage_record_batch(
            account=account, raw_events=events, received_at=datetime.combine(day.date(), RECEIVED_AT, tzinfo=UTC)
        )
        following = day + timedelta(days=1)
        if following.day == 1:
            _periods_close(account, ended_by=following, now=now)
    return account, api_key


def customers_seed(*, now: datetime, main_password: str) -> dict[str, Any]:
    """Every demo customer; the credentials of the main one (the owner who signs in to the dashboard) when new."""
    credentials: dict[str, Any] = {}
    for customer in CUSTOMERS:
        main = customer.owner_email == MAIN_OWNER
        created = customer_seed(customer, now=now, password=main_password if main else None)
        if created is not None and main:
            account, api_key = created
            credentials = {"account_id": account.pk, "api_key": api_key, "demo_owner": MAIN_OWNER,
                           "demo_owner_password": main_password}  # fmt: skip
    return credentials


def new_password() -> str:
    return secrets.token_urlsafe(12)
