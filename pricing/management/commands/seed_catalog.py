import json

from django.core.management.base import BaseCommand
from django.db import transaction

from pricing import seed, services
from pricing.models import AIModel, ExchangeRate, Feature, FeatureCost, ModelPrice, OperationLimit, Plan, PlanTerms


class Command(BaseCommand):
    help = "Load the seed catalog (models, features, rates, plans, limits). Running it again changes nothing."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        created: dict[str, int] = {"models": 0, "prices": 0, "features": 0, "rates": 0, "plans": 0, "limits": 0}
        for model_id, name, provider, inp, cached, out, image, tiers, aliases in seed.MODELS:
            model = AIModel.objects.filter(model_id=model_id).first()
            if model is None:
                model = services.model_create(
                    model_id=model_id, display_name=name, provider=provider, allowed_tiers=tiers, aliases=aliases
                )
                created["models"] += 1
            if not ModelPrice.objects.filter(model=model, effective_from=seed.SEED_EFFECTIVE_FROM).exists():
                write_5m, write_1h = seed.CACHE_WRITE_PRICES.get(model_id, (None, None))  # None: not priced
                services.model_price_set(
                    model=model, input_per_million=inp, cached_input_per_million=cached, output_per_million=out,
                    cache_write_per_million=write_5m, cache_write_1h_per_million=write_1h,
                    image_price=image, effective_from=seed.SEED_EFFECTIVE_FROM, reason=seed.SEED_REASON,
                )  # fmt: skip
                created["prices"] += 1
        for key, name, cost_type, cost, billable, multipliers in seed.FEATURES:
            feature = Feature.objects.filter(feature_key=key).first()
            if feature is None:
                feature = services.feature_create(feature_key=key, display_name=name)
                created["features"] += 1
            if not FeatureCost.objects.filter(feature=feature, effective_from=seed.SEED_EFFECTIVE_FROM).exists():
                services.feature_cost_set(
                    feature=feature,
                    cost_type=cost_type,
                    cost_usd=cost,
                    is_billable=billable,
                    tier_multipliers=multipliers,
                    effective_from=seed.SEED_EFFECTIVE_FROM,
                    reason=seed.SEED_REASON,
                )
        for currency, rate in seed.RATES:
            if not ExchangeRate.objects.filter(currency=currency, effective_from=seed.SEED_EFFECTIVE_FROM).exists():
                services.exchange_rate_set(
                    currency=currency, rate=rate, effective_from=seed.SEED_EFFECTIVE_FROM, reason=seed.SEED_REASON
                )
                created["rates"] += 1
        for code, name, family, terms, has_stripe in seed.PLANS:
            plan = Plan.objects.filter(code=code).first()
            if plan is None:
                plan = services.plan_create(
                    code=code, name=name, family=family,
                    stripe_price_monthly=f"price_{code}_monthly" if has_stripe else "",
                    stripe_price_yearly=f"price_{code}_yearly" if has_stripe else "",
                )  # fmt: skip
                created["plans"] += 1
            if not PlanTerms.objects.filter(plan=plan, effective_from=seed.SEED_EFFECTIVE_FROM).exists():
                services.plan_terms_set(
                    plan=plan, **terms, effective_from=seed.SEED_EFFECTIVE_FROM, reason=seed.SEED_REASON
                )
        for limits in seed.OPERATION_LIMITS:
            if not OperationLimit.objects.filter(plan=None, operation_type=limits["operation_type"]).exists():
                services.operation_limit_set(plan=None, **limits)
                created["limits"] += 1
        self.stdout.write(json.dumps({"created": created}))
