"""Fixtures of the dashboard tests: the seed catalog, an account with its owner, more people, recorded usage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from billing.models import Account, Membership
from billing.services.accounts import member_add
from pricing.selectors import catalog_cache_invalidate
from tests.factories import AccountFactory, UserFactory, events_record

OWNER_EMAIL = "owner@example.com"
OWNER_PASSWORD = "correct-horse-battery-staple"
# Saturday 21 Nov 2026, noon UTC: the period (November) is two-thirds gone
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[datetime]:
    """The clock pinned at NOW, so days, periods and projections are the same on every run."""
    with time_machine.travel(NOW, tick=False):
        # the catalog's cache generation is a timestamp: with the clock pinned, every test would get the same one
        # and could be served the previous test's catalog from process memory
        catalog_cache_invalidate()
        yield NOW
    catalog_cache_invalidate()


@pytest.fixture
def account(catalog: None) -> Account:
    """A Starter (messages) account, 250,000 credits, owned by OWNER_EMAIL."""
    return AccountFactory.create(
        name="Acme Shop", plan="starter", credits="250000", owner_email=OWNER_EMAIL, owner_password=OWNER_PASSWORD
    )


@pytest.fixture
def owner(account: Account) -> User:
    return User.objects.get(username=OWNER_EMAIL)


def add_member(account: Account, role: str, email: str | None = None) -> User:
    user = UserFactory.create(**({"username": email} if email else {}))
    member_add(account=account, user=user, role=role)
    return user


@pytest.fixture
def viewer(account: Account) -> User:
    return add_member(account, Membership.Role.VIEWER, "viewer@example.com")


@pytest.fixture
def admin_user(account: Account) -> User:
    return add_member(account, Membership.Role.ADMIN, "admin@example.com")


def client_for(user: User, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(owner: User) -> Client:
    return client_for(owner)


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    return client_for(viewer)


EventSpec = tuple[datetime, str, str, int, int]  # occurred_at, model, operation, input tokens, output tokens


def record(account: Account, events: list[EventSpec], *, prefix: str = "req") -> None:
    """Record events through the metering service, so counters, rollups and the ledger move as in production."""
    events_record(account, [
        {"request_id": f"{prefix}-{index}", "model": model, "operation_type": operation,
         "input_tokens": tokens_in, "output_tokens": tokens_out, "occurred_at": at.isoformat()}
        for index, (at, model, operation, tokens_in, tokens_out) in enumerate(events)
    ])  # fmt: skip


@pytest.fixture
def recorded(account: Account, frozen: datetime) -> Callable[..., None]:
    """record(...) for the account, at the frozen time."""

    def run(events: list[EventSpec], prefix: str = "req") -> None:
        record(account, events, prefix=prefix)

    return run


def spread(
    days: list[int], *, per_day: int = 2, model: str = "gpt-4o-mini", operation: str = "chat",
    tokens: tuple[int, int] = (20_000, 2_000), now: datetime = NOW,
) -> list[EventSpec]:  # fmt: skip
    """`per_day` events on each of the given days before `now` (0 = today), a minute apart, ending an hour before
    `now` on its own day (so today's events are never in the future)."""
    events: list[EventSpec] = []
    for back in days:
        last = now - timedelta(days=back, hours=1)
        events.extend((last - timedelta(minutes=i), model, operation, *tokens) for i in range(per_day))
    return events
