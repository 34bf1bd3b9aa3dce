import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import AccountFactory


@pytest.fixture
def catalog(db):
    call_command("seed_catalog", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115


@pytest.fixture
def api_client_for():
    def make(account):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")
        return client

    return make


@pytest.fixture
def jive_account(catalog):
    """A prepaid credit account with 10,000 credits ($1 at 10,000 credits per USD)."""
    return AccountFactory.create(plan="jive", credits="10000")
