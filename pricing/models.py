"""The catalog: models, features, exchange rates, plans and operation limits.

Everything with a price is effective-dated: a change adds a version row with `effective_from`, who set it and why;
no version is edited in place, so a past event can be re-rated with the prices of its own time.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from pricing.dimensions import MODES
from pricing.fields import PreciseDecimalField


class VersionFields(models.Model):
    """Who set a version, when it applies from and why; `backdated` marks one that starts before it was made."""

    effective_from = models.DateTimeField(db_index=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    backdated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class AIModel(models.Model):
    model_id = models.CharField(max_length=200, unique=True)
    display_name = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, db_index=True)
    is_active = models.BooleanField(default=True)
    # plan codes allowed to use this model; an empty list allows every plan
    allowed_tiers = models.JSONField(default=list, blank=True)
    mode = models.CharField(
        max_length=30,
        choices=[(m, m) for m in MODES],
        default="chat",
        help_text="what the model does and is billed for",
    )
    max_input_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="the context window; empty: unknown"
    )
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="authorize holds this many output tokens when a request names none"
    )

    class Meta:
        ordering = ["model_id"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.model_id


class ModelAlias(models.Model):
    """A provider's dated snapshot name (gpt-4o-mini-2024-07-18) that means one catalog model."""

    alias = models.CharField(max_length=200, unique=True)
    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.alias} -> {self.model.model_id}"


def _price(help_text: str) -> PreciseDecimalField:
    return PreciseDecimalField(null=True, blank=True, help_text=help_text)


class ModelPrice(VersionFields):
    """A model's prices from `effective_from` on, every dimension of docs/pricing-dimensions.md, all USD.

    A null price means the dimension is not priced: rating falls back where documented (cached input to input,
    reasoning to output, ...) and otherwise refuses an event that uses it; it never rates it at $0.
    """

    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="prices")
    input_per_million = PreciseDecimalField(default=Decimal(0))
    cached_input_per_million = PreciseDecimalField(null=True, blank=True, help_text="empty: the input price")
    cache_write_per_million = _price("5-minute prompt-cache writes; empty: the input price")
    cache_write_1h_per_million = _price("1-hour prompt-cache writes; empty: not priced (refused when used)")
    output_per_million = PreciseDecimalField(default=Decimal(0))
    reasoning_per_million = _price("empty: the output price")
    image_input_per_million = _price("image input tokens; empty: the input price")
    image_output_per_million = _price("image output tokens; empty: the output price")
    audio_input_per_million = _price("audio input tokens; empty: the input price")
    audio_output_per_million = _price("audio output tokens; empty: the output price")
    image_price = PreciseDecimalField(default=Decimal(0), help_text="USD per image")
    image_prices = models.JSONField(
        default=dict, blank=True, help_text='USD per image by "<size>/<quality>", e.g. {"1024x1024/hd": "0.08"}'
    )
    price_per_second = _price("USD per second of audio or video")
    price_per_character = _price("USD per character (text to speech)")
    price_per_request = _price("USD per request (rerank, search query, per-call prices)")
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text='ascending [{"above_input_tokens": 200000, "<price field>": "price"}]: past the threshold the '
        "whole request is priced at the tier",
    )
    service_tiers = models.JSONField(
        default=dict, blank=True, help_text='{"batch"|"flex"|"priority": {"<price field>": "price"}}'
    )
    off_peak = models.JSONField(
        default=list, blank=True, help_text='[{"start": "HH:MM", "end": "HH:MM", "<price field>": "price"}] in UTC'
    )

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="model_price_unique_version"),
            models.CheckConstraint(
                condition=Q(input_per_million__gte=0)
                & Q(output_per_million__gte=0)
                & Q(image_price__gte=0)
                & (Q(cached_input_per_million__isnull=True) | Q(cached_input_per_million__gte=0)),
                name="model_price_not_negative",
            ),
            models.CheckConstraint(
                condition=(Q(cache_write_per_million__isnull=True) | Q(cache_write_per_million__gte=0))
                & (Q(cache_write_1h_per_million__isnull=True) | Q(cache_write_1h_per_million__gte=0))
                & (Q(reasoning_per_million__isnull=True) | Q(reasoning_per_million__gte=0))
                & (Q(image_input_per_million__isnull=True) | Q(image_input_per_million__gte=0))
                & (Q(image_output_per_million__isnull=True) | Q(image_output_per_million__gte=0))
                & (Q(audio_input_per_million__isnull=True) | Q(audio_input_per_million__gte=0))
                & (Q(audio_output_per_million__isnull=True) | Q(audio_output_per_million__gte=0))
                & (Q(price_per_second__isnull=True) | Q(price_per_second__gte=0))
                & (Q(price_per_character__isnull=True) | Q(price_per_character__gte=0))
                & (Q(price_per_request__isnull=True) | Q(price_per_request__gte=0)),
                name="model_price_dimensions_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.model_id} from {self.effective_from:%Y-%m-%d %H:%M}"


class Feature(models.Model):
    feature_key = models.CharField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["feature_key"]

    def __str__(self) -> str:
        return self.feature_key


class CostType(models.TextChoices):
    PER_USE = "per_use", "per use (cost x quantity)"
    PER_IMAGE = "per_image", "per image (cost x images)"
    PER_TOKEN = "per_token", "per token (cost per 1M x the request's tokens)"
    MULTIPLIER = "multiplier", "multiplier (scales the request's token charge)"


class FeatureCost(VersionFields):
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="costs")
    cost_type = models.CharField(max_length=20, choices=CostType.choices)
    cost_usd = PreciseDecimalField(
        default=Decimal(0), help_text="USD per use or image, per 1M tokens, or the default multiplier"
    )
    cepo_multiplier = PreciseDecimalField(default=Decimal(1))
    is_billable = models.BooleanField(default=True)

    class Meta:
        ordering = ["feature", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["feature", "effective_from"], name="feature_cost_unique_version"),
            models.CheckConstraint(
                condition=Q(cost_usd__gte=0) & Q(cepo_multiplier__gt=0), name="feature_cost_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature.feature_key} from {self.effective_from:%Y-%m-%d %H:%M}"


class FeatureTierMultiplier(models.Model):
    """The multiplier a plan (tier) pays for a feature, part of one feature cost version."""

    feature_cost = models.ForeignKey(FeatureCost, on_delete=models.CASCADE, related_name="tier_multipliers")
    tier = models.CharField(max_length=50)
    multiplier = PreciseDecimalField()

    class Meta:
        ordering = ["tier"]
        constraints = [
            models.UniqueConstraint(fields=["feature_cost", "tier"], name="feature_tier_multiplier_unique"),
            models.CheckConstraint(condition=Q(multiplier__gt=0), name="feature_tier_multiplier_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.tier} x{self.multiplier}"


class ExchangeRate(VersionFields):
    """Units of `currency` per 1 USD (CREDITS is a currency here), from `effective_from` on."""

    currency = models.CharField(max_length=10, db_index=True)
    rate = PreciseDecimalField()

    class Meta:
        ordering = ["currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "effective_from"], name="exchange_rate_unique_version"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="exchange_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"USD->{self.currency} {self.rate} from {self.effective_from:%Y-%m-%d %H:%M}"


class PlanUnit(models.TextChoices):
    TOKENS = "tokens"
    MESSAGES = "messages"
    CREDITS = "credits"


class BillingInterval(models.TextChoices):
    MONTH = "month"
    YEAR = "year"


class Plan(models.Model):
    """A plan's identity; its terms are versioned in PlanTerms and apply from the next period."""

    code = models.CharField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    family = models.CharField(max_length=50, help_text="plans of one family are compared for recommendations")
    is_public = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    stripe_price_monthly = models.CharField(max_length=200, blank=True)
    stripe_price_yearly = models.CharField(max_length=200, blank=True)
    anomaly_suspends = models.BooleanField(
        default=False, help_text="suspend an account automatically when an anomaly alert fires (default: flag only)"
    )

    class Meta:
        ordering = ["family", "code"]

    def __str__(self) -> str:
        return self.code


def default_alert_thresholds() -> list[int]:
    return [75, 90, 100]


class PlanTerms(VersionFields):
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="terms")
    interval = models.CharField(max_length=10, choices=BillingInterval.choices, default=BillingInterval.MONTH)
    fee = PreciseDecimalField(default=Decimal(0))
    currency = models.CharField(max_length=10, default="USD")
    unit = models.CharField(max_length=20, choices=PlanUnit.choices)
    included_units = PreciseDecimalField(null=True, blank=True, help_text="empty: unlimited")
    overage_rate = PreciseDecimalField(default=Decimal(0), help_text="USD per unit beyond the included")
    monthly_spend_cap = PreciseDecimalField(null=True, blank=True, help_text="empty: no cap")
    overage_allowed = models.BooleanField(default=True)
    max_overage_pct = PreciseDecimalField(null=True, blank=True, help_text="empty: no limit")
    hard_limit = models.BooleanField(default=False)
    markup = PreciseDecimalField(default=Decimal(1), help_text="multiplier on provider cost")
    requests_per_hour = models.PositiveIntegerField(null=True, blank=True, help_text="empty: no limit")
    alert_thresholds = models.JSONField(default=default_alert_thresholds)

    class Meta:
        ordering = ["plan", "-effective_from"]
        verbose_name_plural = "plan terms"
        constraints = [
            models.UniqueConstraint(fields=["plan", "effective_from"], name="plan_terms_unique_version"),
            models.CheckConstraint(
                condition=Q(fee__gte=0) & Q(overage_rate__gte=0) & Q(markup__gt=0), name="plan_terms_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} from {self.effective_from:%Y-%m-%d}"


class OperationLimit(models.Model):
    """Per-message token limits and daily/monthly cost limits for an operation type, for a plan or for all."""

    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.CASCADE, related_name="operation_limits")
    operation_type = models.CharField(max_length=100)
    max_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_total_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_daily_cost_usd = PreciseDecimalField(null=True, blank=True)
    max_monthly_cost_usd = PreciseDecimalField(null=True, blank=True)
    alert_threshold_pct = models.PositiveSmallIntegerField(default=80)

    class Meta:
        ordering = ["operation_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "operation_type"], condition=Q(plan__isnull=False), name="operation_limit_per_plan"
            ),
            models.UniqueConstraint(
                fields=["operation_type"], condition=Q(plan__isnull=True), name="operation_limit_global"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation_type} ({self.plan.code if self.plan else 'all plans'})"


class CatalogAudit(models.Model):
    """Every catalog write: who, when, what, before and after."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_key = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_type} {self.object_key}"
