"""The admin's flush of every process's cached catalog."""

from __future__ import annotations

from pricing.models import CatalogAudit
from pricing.selectors import catalog_cache_invalidate
from pricing.services.audit import Actor, _actor


def catalog_cache_flush(*, actor: Actor = None) -> None:
    """Drop every process's cached catalog (an admin action); the next read rebuilds it."""
    CatalogAudit.objects.create(actor=_actor(actor), action="cache_flush", object_type="catalog", object_key="*")
    catalog_cache_invalidate()
