"""factory_boy factories. Accounts are made through the service, so they have a wallet, subscription and key; events
are recorded through the metering service, so counters, rollups and the ledger move as in production."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from billing.models import Account
from billing.services.accounts import account_create
from usage.services.recording import BatchResult, usage_record_batch


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.django.Password("pw-for-tests-only")


class AccountFactory(factory.django.DjangoModelFactory[Account]):
    """`AccountFactory(plan="starter", credits="1000")`; the clear API key is on `account.api_key`."""

    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Shop {n}")

    @classmethod
    def _create(cls, model_class: type[Account], *args: Any, **kwargs: Any) -> Account:
        account, api_key = account_create(
            name=kwargs.pop("name"),
            plan_code=kwargs.pop("plan", "jive"),
            credits=kwargs.pop("credits", None),
            owner_email=kwargs.pop("owner_email", None),
            owner_password=kwargs.pop("owner_password", None),
            display_currency=kwargs.pop("display_currency", "USD"),
            as_of=kwargs.pop("as_of", None),
        )
        for field, value in kwargs.items():
            setattr(account, field, value)
        if kwargs:
            account.save()
        account.api_key = api_key  # type: ignore[attr-defined]
        return account


class EventFactory(factory.DictFactory):
    """A raw usage event as the API takes it: `EventFactory.build(model="gpt-4o-mini", input_tokens=5000)`; any other
    field of CONTRACT.md (occurred_at, cached_input_tokens, operation_type, ...) is passed through."""

    request_id = factory.Sequence(lambda n: f"req-{n}")
    model = "qwen-3-32b"
    input_tokens = 1000
    output_tokens = 100


def events_record(
    account: Account, events: Iterable[dict[str, Any]], *, received_at: datetime | None = None
) -> list[str]:
    """Record raw events (EventFactory's) for the account, 1,000 a batch as the API takes them, and answer each
    one's status (recorded or duplicate); a test that records an event the service rejects fails here, with why."""
    raw = list(events)
    statuses: list[str] = []
    for start in range(0, len(raw), 1000):
        batch: BatchResult = usage_record_batch(
            account=account, raw_events=raw[start : start + 1000], received_at=received_at
        )
        rejected = [r for r in batch.results if r.status == "rejected"]
        assert not rejected, rejected
        statuses.extend(r.status for r in batch.results)
    return statuses
