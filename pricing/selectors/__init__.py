"""Reads of the catalog. `catalog_snapshot()` is the one the hot paths use: served from memory and the cache.

One module per kind of read; the package re-exports every public name, so `pricing.selectors.<name>` still works.
"""

from pricing.selectors.lookups import (
    PLAN_TERM_NAMES,
    feature_by_key,
    feature_cost_values_at,
    model_alias_owner,
    model_aliases,
    model_by_id,
    model_price_in_force,
    plan_by_code,
    plan_codes,
    plan_terms_values_at,
)
from pricing.selectors.price_lists import (
    ExchangeRateRow,
    FeatureCostRow,
    ModelPriceRow,
    catalog_next_change,
    exchange_rate_list,
    feature_cost_list,
    model_price_list,
    price_dimensions_shown,
)
from pricing.selectors.snapshot_build import (
    catalog_snapshot_build,
    model_price_version,
    plan_terms_by_id,
    plan_terms_version,
)
from pricing.selectors.snapshot_cache import (
    GENERATION_KEY,
    SNAPSHOT_KEY,
    catalog_cache_invalidate,
    catalog_generation,
    catalog_generation_seen,
    catalog_snapshot,
    logger,
)

__all__ = [
    "GENERATION_KEY",
    "PLAN_TERM_NAMES",
    "SNAPSHOT_KEY",
    "ExchangeRateRow",
    "FeatureCostRow",
    "ModelPriceRow",
    "catalog_cache_invalidate",
    "catalog_generation",
    "catalog_generation_seen",
    "catalog_next_change",
    "catalog_snapshot",
    "catalog_snapshot_build",
    "exchange_rate_list",
    "feature_by_key",
    "feature_cost_list",
    "feature_cost_values_at",
    "logger",
    "model_alias_owner",
    "model_aliases",
    "model_by_id",
    "model_price_in_force",
    "model_price_list",
    "model_price_version",
    "plan_by_code",
    "plan_codes",
    "plan_terms_by_id",
    "plan_terms_values_at",
    "plan_terms_version",
    "price_dimensions_shown",
]
