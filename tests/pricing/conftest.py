import pytest
from django.core.management import call_command

from pricing.selectors import catalog_snapshot


@pytest.fixture
def seeded_catalog(db):
    call_command("seed_catalog", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return catalog_snapshot()
