import pytest

from tests.factories import AccountFactory


@pytest.fixture
def jive_account(catalog):
    """A prepaid credit account with 10,000 credits ($1 at 10,000 credits per USD)."""
    return AccountFactory.create(plan="jive", credits="10000")
