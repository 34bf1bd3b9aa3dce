"""Input and output serializers of the pricing API (pricing/api.py). They parse and shape; the rules live in services.

Money crosses the API as decimal strings. Input amounts are read as Decimal (the API's JSON parser never makes a
float) and refused when they are not finite or do not fit the stored precision, never silently rounded.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from core.decimals import decimal_string
from pricing.dimensions import MODES, OVERRIDABLE_PRICE_FIELDS
from pricing.models import BillingInterval, CostType, PlanUnit
from pricing.money import CURRENCIES
from pricing.selectors import plan_codes

MAX_DIGITS = 28
DECIMAL_PLACES = 12
POSITIVE_INTEGER_MAX = 2_147_483_647  # PositiveIntegerField's upper bound on every database Django supports


def without_trailing_zeros(value: Decimal) -> Decimal:
    """The same number without trailing fractional zeros; unlike Decimal.normalize() it never rounds."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity: nothing to strip
        return value
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    return Decimal((sign, digits, exponent))


class MoneyField(serializers.DecimalField):
    """A precise decimal (money, rate or multiplier) shown as a plain decimal string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        kwargs.setdefault("coerce_to_string", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        if value is None:
            return None
        return decimal_string(Decimal(value))


class DecimalInputField(MoneyField):
    """An input amount: a JSON number (parsed as Decimal) or a numeric string, finite, within the stored precision.

    Trailing zeros do not count against the 12 decimal places ("0.150000000000000" is 0.15).
    """

    def validate_precision(self, value: Decimal) -> Decimal:
        return super().validate_precision(without_trailing_zeros(value))


def _plain_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_string(value)
    if isinstance(value, dict):
        return {key: _plain_json(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(inner) for inner in value]
    return value


class PriceDimensionsField(serializers.DictField):
    """Price dimensions by catalog name, every amount a decimal string (nested in tiers and windows too)."""

    def to_representation(self, value: Any) -> Any:
        return _plain_json(value)


class VersionInput(serializers.Serializer):
    """When a new version starts (default now; a time without an offset is UTC) and why (needed to back-date)."""

    effective_from = serializers.DateTimeField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class VersionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    effective_from = serializers.DateTimeField()
    backdated = serializers.BooleanField()
    reason = serializers.CharField()


def _known_tiers(tiers: list[str] | dict[str, Any]) -> None:
    unknown = sorted(set(tiers) - plan_codes())
    if unknown:
        raise serializers.ValidationError(f"unknown plan(s): {', '.join(unknown)}")


# --- Reads ----------------------------------------------------------------------------------------------------------


class TierQuery(serializers.Serializer):
    tier = serializers.CharField(required=False, max_length=50, help_text="only models this plan (tier) may use")


PROVIDER_PRICE_FIELDS = (
    "input_price_per_million",
    "cached_input_price_per_million",
    "output_price_per_million",
    "image_price_per_unit",
    "prices",
)
# the price dimensions beyond the four classic prices, by their catalog names (docs/pricing-dimensions.md)
DIMENSION_PRICE_FIELDS = tuple(
    name
    for name in OVERRIDABLE_PRICE_FIELDS
    if name not in ("input_per_million", "cached_input_per_million", "output_per_million", "image_price")
)


class ModelListOutput(serializers.Serializer):
    """A model with its price in force. The provider prices in USD are left out for callers who may not see them."""

    model_id = serializers.CharField()
    display_name = serializers.CharField()
    provider = serializers.CharField()
    allowed_tiers = serializers.ListField(
        child=serializers.CharField(), help_text="plan codes that may use the model; empty: every plan"
    )
    effective_from = serializers.DateTimeField(help_text="when the price in force started")
    input_price_per_million = MoneyField(source="input_per_million", required=False, help_text="USD per 1M tokens")
    cached_input_price_per_million = MoneyField(
        source="cached_input_per_million", required=False, help_text="USD per 1M cached input tokens"
    )
    output_price_per_million = MoneyField(source="output_per_million", required=False, help_text="USD per 1M tokens")
    image_price_per_unit = MoneyField(source="image_price", required=False, help_text="USD per image")
    mode = serializers.CharField(help_text="chat, embedding, image_generation, audio_speech, rerank, ...")
    max_input_tokens = serializers.IntegerField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    prices = PriceDimensionsField(
        required=False,
        help_text="every priced dimension the model's mode uses, by its catalog name (docs/pricing-dimensions.md), "
        "with image_prices, tiers, service_tiers and off_peak when set",
    )
    input_credits_per_million = MoneyField(allow_null=True, help_text="credits per 1M input tokens")
    cached_input_credits_per_million = MoneyField(allow_null=True)
    output_credits_per_million = MoneyField(allow_null=True)
    image_credits_per_unit = MoneyField(allow_null=True, help_text="credits per image")

    def to_representation(self, instance: Any) -> Any:
        shown = super().to_representation(instance)
        if not self.context.get("show_provider_prices", True):
            for name in PROVIDER_PRICE_FIELDS:
                shown.pop(name, None)
        return shown


class FeatureListOutput(serializers.Serializer):
    feature_key = serializers.CharField()
    display_name = serializers.CharField()
    cost_type = serializers.ChoiceField(choices=CostType.choices)
    cost_usd = MoneyField(
        required=False,
        help_text="USD per use or image, or per 1M tokens; for a `multiplier` feature the default multiplier",
    )
    cost_credits = MoneyField(allow_null=True, help_text="cost_usd in credits; null for a `multiplier` feature")
    tier_multipliers = serializers.DictField(child=MoneyField(), help_text="plan code -> multiplier")
    cepo_multiplier = MoneyField()
    is_billable = serializers.BooleanField()
    effective_from = serializers.DateTimeField(help_text="when the cost in force started")

    def to_representation(self, instance: Any) -> Any:
        shown = super().to_representation(instance)
        if not self.context.get("show_provider_prices", True) and instance.cost_type != CostType.MULTIPLIER:
            shown.pop("cost_usd", None)
        return shown


class ExchangeRateOutput(serializers.Serializer):
    from_currency = serializers.SerializerMethodField()
    to_currency = serializers.CharField(source="currency")
    rate = MoneyField(help_text="units of to_currency per 1 USD")
    effective_from = serializers.DateTimeField()

    def get_from_currency(self, row: Any) -> str:
        return "USD"


# --- Staff writes: models ------------------------------------------------------------------------------------------


class ModelPutInput(VersionInput):
    """Create the model if missing, update the fields given, and add a price version when any price is given.

    Prices not given keep the value of the version in force at `effective_from`.
    """

    display_name = serializers.CharField(required=False, max_length=200)
    provider = serializers.CharField(required=False, max_length=100, help_text="required to create a model")
    allowed_tiers = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=100, help_text="empty: every plan"
    )
    input_price_per_million = DecimalInputField(required=False)
    cached_input_price_per_million = DecimalInputField(
        required=False, allow_null=True, help_text="null: the input price"
    )
    output_price_per_million = DecimalInputField(required=False)
    image_price_per_unit = DecimalInputField(required=False)
    mode = serializers.ChoiceField(choices=list(MODES), required=False)
    max_input_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_output_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    image_prices = serializers.DictField(child=DecimalInputField(), required=False, help_text='{"1024x1024/hd": 0.08}')
    tiers = serializers.ListField(child=serializers.DictField(), required=False, max_length=20)
    service_tiers = serializers.DictField(child=serializers.DictField(), required=False)
    off_peak = serializers.ListField(child=serializers.DictField(), required=False, max_length=24)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name in DIMENSION_PRICE_FIELDS:  # each nullable: null leaves the dimension not priced
            fields[name] = DecimalInputField(required=False, allow_null=True)
        return fields

    def validate_allowed_tiers(self, value: list[str]) -> list[str]:
        _known_tiers(value)
        return value


class PriceVersionOutput(VersionOutput):
    input_price_per_million = MoneyField(source="input_per_million")
    cached_input_price_per_million = MoneyField(source="cached_input_per_million", allow_null=True)
    output_price_per_million = MoneyField(source="output_per_million")
    image_price_per_unit = MoneyField(source="image_price")
    image_prices = PriceDimensionsField()
    tiers = serializers.ListField(child=PriceDimensionsField())
    service_tiers = PriceDimensionsField()
    off_peak = serializers.ListField(child=PriceDimensionsField())

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name in DIMENSION_PRICE_FIELDS:
            fields[name] = MoneyField(allow_null=True)
        return fields


class ModelDetailOutput(serializers.Serializer):
    model_id = serializers.CharField()
    display_name = serializers.CharField()
    provider = serializers.CharField()
    is_active = serializers.BooleanField()
    allowed_tiers = serializers.ListField(child=serializers.CharField())
    mode = serializers.CharField()
    max_input_tokens = serializers.IntegerField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    aliases = serializers.ListField(child=serializers.CharField())
    created = serializers.BooleanField(help_text="this request created the model")
    price_version = PriceVersionOutput(allow_null=True, help_text="the price version this request added, if any")


class AliasInput(serializers.Serializer):
    alias = serializers.CharField(max_length=200)


# --- Staff writes: features, rates, plans --------------------------------------------------------------------------


class FeatureUpdateInput(serializers.Serializer):
    """A feature's descriptive fields (not versioned); those left out stay as they are."""

    display_name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class FeatureOutput(serializers.Serializer):
    feature_key = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    is_active = serializers.BooleanField()


class PlanUpdateInput(serializers.Serializer):
    """A plan's descriptive fields (not versioned); those left out stay as they are."""

    name = serializers.CharField(max_length=200, required=False)
    is_public = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)
    stripe_price_monthly = serializers.CharField(max_length=200, required=False, allow_blank=True)
    stripe_price_yearly = serializers.CharField(max_length=200, required=False, allow_blank=True)


class PlanOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    family = serializers.CharField()
    is_public = serializers.BooleanField()
    is_active = serializers.BooleanField()
    stripe_price_monthly = serializers.CharField()
    stripe_price_yearly = serializers.CharField()


class FeatureCostInput(VersionInput):
    """A new cost version. Fields not given keep the value of the version in force at `effective_from`;
    `tier_multipliers`, when given, replaces the whole map."""

    cost_type = serializers.ChoiceField(choices=CostType.choices, required=False)
    cost_usd = DecimalInputField(required=False)
    tier_multipliers = serializers.DictField(child=DecimalInputField(), required=False)
    cepo_multiplier = DecimalInputField(required=False)
    is_billable = serializers.BooleanField(required=False)

    def validate_tier_multipliers(self, value: dict[str, Decimal]) -> dict[str, Decimal]:
        _known_tiers(value)
        return value


class FeatureCostOutput(VersionOutput):
    feature_key = serializers.CharField(source="feature.feature_key")
    display_name = serializers.CharField(source="feature.display_name")
    cost_type = serializers.ChoiceField(choices=CostType.choices)
    cost_usd = MoneyField()
    tier_multipliers = serializers.SerializerMethodField()
    cepo_multiplier = MoneyField()
    is_billable = serializers.BooleanField()

    def get_tier_multipliers(self, version: Any) -> dict[str, str]:
        return {t.tier: decimal_string(t.multiplier) for t in version.tier_multipliers.order_by("tier")}


class ExchangeRateInput(VersionInput):
    currency = serializers.CharField(
        max_length=10, help_text=f"one of {', '.join(c for c in CURRENCIES if c != 'USD')}"
    )
    rate = DecimalInputField(help_text="units of the currency per 1 USD, > 0")


class ExchangeRateVersionOutput(VersionOutput):
    from_currency = serializers.SerializerMethodField()
    to_currency = serializers.CharField(source="currency")
    rate = MoneyField()

    def get_from_currency(self, version: Any) -> str:
        return "USD"


class PlanTermsInput(VersionInput):
    """A new terms version. Terms not given keep the value of the version in force at `effective_from`."""

    interval = serializers.ChoiceField(choices=BillingInterval.choices, required=False)
    fee = DecimalInputField(required=False)
    currency = serializers.CharField(required=False, max_length=10)
    unit = serializers.ChoiceField(choices=PlanUnit.choices, required=False)
    included_units = DecimalInputField(required=False, allow_null=True, help_text="null: unlimited")
    overage_rate = DecimalInputField(required=False, help_text="USD per unit beyond the included units")
    monthly_spend_cap = DecimalInputField(required=False, allow_null=True, help_text="null: no cap")
    overage_allowed = serializers.BooleanField(required=False)
    max_overage_pct = DecimalInputField(required=False, allow_null=True, help_text="null: no limit")
    hard_limit = serializers.BooleanField(required=False)
    markup = DecimalInputField(required=False, help_text="multiplier on provider cost, > 0")
    requests_per_hour = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=POSITIVE_INTEGER_MAX, help_text="null: no limit"
    )
    alert_thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000), required=False, max_length=20
    )


class PlanTermsOutput(VersionOutput):
    plan_code = serializers.CharField(source="plan.code")
    interval = serializers.CharField()
    fee = MoneyField()
    currency = serializers.CharField()
    unit = serializers.CharField()
    included_units = MoneyField(allow_null=True)
    overage_rate = MoneyField()
    monthly_spend_cap = MoneyField(allow_null=True)
    overage_allowed = serializers.BooleanField()
    max_overage_pct = MoneyField(allow_null=True)
    hard_limit = serializers.BooleanField()
    markup = MoneyField()
    requests_per_hour = serializers.IntegerField(allow_null=True)
    alert_thresholds = serializers.ListField(child=serializers.IntegerField())
