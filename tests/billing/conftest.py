"""Billing fixtures (the seed catalog and `api_client_for` come from tests/conftest.py)."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.services.server_keys import server_key_issue


@pytest.fixture
def server_client(api_client_for: Callable[[Any], APIClient]) -> Callable[..., APIClient]:
    """`server_client(scopes="customers,usage,read")`: an APIClient with a new server key of those scopes."""

    def make(scopes: str = "customers,usage,read") -> APIClient:
        _, raw = server_key_issue(name="backend", scopes=scopes)
        return api_client_for(raw)

    return make
