"""The SDK against a live TokenLedger (pytest-django's live server: real HTTP, real database), and the real `openai`
and `anthropic` clients against a fake provider given to them as an httpx transport."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from tokenledger import AsyncTokenLedger, TokenLedger

from billing.models import Wallet
from tests.factories import AccountFactory
from tests.sdk.fake_provider import FakeProvider

# asyncio.run() inside a test is an event loop in this thread; the ORM is only used outside it
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

FAST: dict[str, Any] = {"backoff": 0.01, "max_backoff": 0.05, "max_retry_after": 0.05}


@pytest.fixture
def catalog(transactional_db: Any) -> None:
    call_command("seed_catalog", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115


@pytest.fixture
def account(catalog: None) -> Any:
    """A prepaid credit account (jive) with 10,000 credits."""
    return AccountFactory.create(plan="jive", credits="10000")


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    """Every request the SDK sent to TokenLedger (method, path, JSON body, headers), in order."""
    return []


def _spy(sent: list[dict[str, Any]]) -> Any:
    def hook(request: httpx.Request) -> None:
        body = request.content
        sent.append({
            "method": request.method, "path": request.url.path,
            "json": httpx.Response(200, content=body).json() if body else None, "headers": dict(request.headers),
        })  # fmt: skip

    return hook


@pytest.fixture
def ledger(live_server: Any, account: Any, sent: list[dict[str, Any]]) -> Iterator[TokenLedger]:
    client = httpx.Client(event_hooks={"request": [_spy(sent)]})
    with TokenLedger(account.api_key, live_server.url, http_client=client, **FAST) as ledger:
        yield ledger
    client.close()


@pytest.fixture
def async_ledger_factory(live_server: Any, account: Any, sent: list[dict[str, Any]]) -> Any:
    """Makes an AsyncTokenLedger inside the test's own event loop."""

    def make(**options: Any) -> AsyncTokenLedger:
        async def hook(request: httpx.Request) -> None:
            _spy(sent)(request)

        # the client outlives its event loop, so it is never closed: ask the server to close each connection, or
        # a keep-alive request thread of the live server would hold its database session past the test
        client = httpx.AsyncClient(event_hooks={"request": [hook]}, headers={"Connection": "close"})
        return AsyncTokenLedger(account.api_key, live_server.url, http_client=client, **{**FAST, **options})

    return make


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


def wallet_of(account: Any) -> tuple[Decimal, Decimal]:
    wallet = Wallet.objects.get(account=account)
    return wallet.balance, wallet.held
