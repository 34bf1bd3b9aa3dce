import pytest
from django.core.management import call_command

from pricing.selectors import catalog_snapshot


@pytest.fixture
def seeded_catalog(db):
    call_command("seed_catalog", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return catalog_snapshot()


@pytest.fixture
def published_catalog(seeded_catalog):
    """The seed catalog plus models at their providers' published prices (tests/pricing/published.py)."""
    from pricing.selectors import catalog_snapshot_build
    from tests.pricing.published import published_catalog_load

    published_catalog_load()
    return catalog_snapshot_build()
