"""The change previews as the catalog forms show them: the version the pricing service would write (a ModelPrice,
FeatureCost or PlanTerms row, rolled back after drawing) turned into the catalog's own version type, previewed by
console.previews over last period's usage, and drawn as a table. Registered with pricing's admin in console.admin.

The catalog is read from the database, not the cache: inside the preview's transaction it holds the model,
feature or plan the form is about even when the cached catalog does not yet.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from console import previews
from pricing.catalog import FeatureCostVersion
from pricing.models import FeatureCost, ModelPrice, PlanTerms
from pricing.selectors import catalog_snapshot_build, model_price_version, plan_terms_version


def _draw(preview: previews.ChangePreview) -> SafeString:
    html = render_to_string("console/includes/preview.html", {"preview": preview})
    return mark_safe(html)  # noqa: S308 - rendered by a template, which escapes every value


def model_price(version: ModelPrice) -> SafeString:
    return _draw(previews.model_price_preview(
        snapshot=catalog_snapshot_build(), model_id=version.model.model_id, price=model_price_version(version),
        window=previews.last_period(now=timezone.now()),
    ))  # fmt: skip


def feature_cost(version: FeatureCost) -> SafeString:
    cost = FeatureCostVersion(
        id=version.pk,
        effective_from=version.effective_from,
        cost_type=version.cost_type,
        cost_usd=version.cost_usd,
        cepo_multiplier=version.cepo_multiplier,
        is_billable=version.is_billable,
        tier_multipliers={t.tier: t.multiplier for t in version.tier_multipliers.all()},
    )
    return _draw(previews.feature_cost_preview(
        snapshot=catalog_snapshot_build(), feature_key=version.feature.feature_key, cost=cost,
        window=previews.last_period(now=timezone.now()),
    ))  # fmt: skip


def plan_terms(version: PlanTerms) -> SafeString:
    return _draw(previews.plan_terms_preview(
        snapshot=catalog_snapshot_build(), plan_code=version.plan.code, terms=plan_terms_version(version),
        window=previews.last_period(now=timezone.now()),
    ))  # fmt: skip
