"""Catalog writes. Each adds a version (never edits one), is audited, and refreshes the cached catalog on commit.

One module per part of the catalog; the package re-exports every service, so `pricing.services.<name>` still works.
"""

from pricing.services.ai_models import (
    model_alias_add,
    model_alias_remove,
    model_create,
    model_price_set,
    model_set_active,
    model_update,
)
from pricing.services.audit import Actor
from pricing.services.cache import catalog_cache_flush
from pricing.services.exchange_rates import exchange_rate_set
from pricing.services.features import feature_cost_set, feature_create, feature_update
from pricing.services.plans import PLAN_TERM_FIELDS, operation_limit_set, plan_create, plan_terms_set, plan_update

__all__ = [
    "PLAN_TERM_FIELDS",
    "Actor",
    "catalog_cache_flush",
    "exchange_rate_set",
    "feature_cost_set",
    "feature_create",
    "feature_update",
    "model_alias_add",
    "model_alias_remove",
    "model_create",
    "model_price_set",
    "model_set_active",
    "model_update",
    "operation_limit_set",
    "plan_create",
    "plan_terms_set",
    "plan_update",
]
