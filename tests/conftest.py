from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with the reason shown in the summary, the tests whose services this run does not have."""
    on_postgres = connection.vendor == "postgresql"
    for item in items:
        if item.get_closest_marker("postgres") and not on_postgres:
            item.add_marker(
                pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (see README)")
            )
        if item.get_closest_marker("redis") and not settings.REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="needs Redis: run with REDIS_URL=redis://... (see README)"))


@pytest.fixture(autouse=True)
def _isolated_cache():
    from django.core.cache import cache

    from core.local_memo import local_memos_forget
    from usage.services.recording import periods_in_force_forget
    from usage.throttling import plan_limits_forget

    cache.clear()
    local_memos_forget()  # a test's rolled-back writes publish no change
    plan_limits_forget()
    periods_in_force_forget()
    yield
    cache.clear()
    local_memos_forget()
    plan_limits_forget()
    periods_in_force_forget()


@pytest.fixture
def celery_eager():
    """Run tasks in-process for tests that check a task's effect, not the worker round trip."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Tests create many users; a fast hasher keeps that cheap. Production keeps Django's default."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def catalog(db: Any) -> None:
    """The seed catalog (models, features, rates, plans), as `seed_catalog` loads it."""
    with open(os.devnull, "w") as sink:
        call_command("seed_catalog", verbosity=0, stdout=sink)


@pytest.fixture
def api_client_for() -> Callable[[Any], APIClient]:
    """`api_client_for(account)` or `api_client_for("tls_...")`: an APIClient that sends `Authorization: Bearer`
    with the account's key (`account.api_key`, from AccountFactory) or the raw key given."""

    def make(key: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key if isinstance(key, str) else key.api_key}")
        return client

    return make
