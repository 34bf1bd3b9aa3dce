"""A catalog snapshot: every version of every price, in plain immutable objects, so rating needs no database.

A snapshot holds the versions rather than the prices in force, so one cached snapshot rates an event at the prices
of its own time and a new version takes effect exactly at its `effective_from`.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from typing import TypeVar

from pricing.dimensions import OVERRIDABLE_PRICE_FIELDS
from pricing.errors import InactiveModel, NoPriceInForce, UnknownFeature, UnknownModel, UnknownPlan

V = TypeVar("V", bound="_Versioned")


def _version_at(versions: tuple[V, ...], at: datetime) -> V | None:
    """The version in force at `at`: the latest whose effective_from <= at. Versions are sorted ascending."""
    if len(versions) == 1:
        return versions[0] if versions[0].effective_from <= at else None
    index = bisect.bisect_right(versions, at, key=_effective_from)
    return versions[index - 1] if index else None


def _effective_from(version: _Versioned) -> datetime:
    return version.effective_from


@dataclass(frozen=True, slots=True)
class _Versioned:
    id: int
    effective_from: datetime


@dataclass(frozen=True, slots=True)
class TierPrices:
    """Past `above_input_tokens` input tokens (the total), the whole request is priced with these prices."""

    above_input_tokens: int
    prices: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class OffPeakWindow:
    """[start, end) in minutes of the UTC day; end < start wraps past midnight."""

    start_minute: int
    end_minute: int
    prices: Mapping[str, Decimal]

    def contains(self, at: datetime) -> bool:
        minute = at.astimezone(UTC).hour * 60 + at.astimezone(UTC).minute
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute


@dataclass(frozen=True, slots=True)
class ModelPriceVersion(_Versioned):
    """One price version; None is "not priced" (docs/pricing-dimensions.md). `cached_input_per_million` is already
    the input price when the version has none of its own (`cached_input_is_fallback` then says so)."""

    input_per_million: Decimal
    cached_input_per_million: Decimal
    output_per_million: Decimal
    image_price: Decimal
    cache_write_per_million: Decimal | None = None
    cache_write_1h_per_million: Decimal | None = None
    reasoning_per_million: Decimal | None = None
    image_input_per_million: Decimal | None = None
    image_output_per_million: Decimal | None = None
    audio_input_per_million: Decimal | None = None
    audio_output_per_million: Decimal | None = None
    price_per_second: Decimal | None = None
    price_per_character: Decimal | None = None
    price_per_request: Decimal | None = None
    image_prices: Mapping[str, Decimal] = field(default_factory=dict)
    tiers: tuple[TierPrices, ...] = ()
    service_tiers: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    off_peak: tuple[OffPeakWindow, ...] = ()
    cached_input_is_fallback: bool = False
    # every price field by name, as stored (None where not priced); built once, read by rating
    base: Mapping[str, Decimal | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = {name: getattr(self, name) for name in OVERRIDABLE_PRICE_FIELDS}
        if self.cached_input_is_fallback:
            base["cached_input_per_million"] = None
        object.__setattr__(self, "base", base)

    @property
    def structured(self) -> bool:
        """Whether the prices can change with the request (tiers, service tiers, off-peak windows)."""
        return bool(self.tiers or self.service_tiers or self.off_peak)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    model_id: str
    display_name: str
    provider: str
    is_active: bool
    allowed_tiers: frozenset[str]
    prices: tuple[ModelPriceVersion, ...]
    mode: str = "chat"
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None

    def allows(self, tier: str) -> bool:
        return not self.allowed_tiers or tier in self.allowed_tiers

    def price_at(self, at: datetime) -> ModelPriceVersion:
        version = _version_at(self.prices, at)
        if version is None:
            raise NoPriceInForce(f"model {self.model_id!r} has no price in force at {at.isoformat()}")
        return version


@dataclass(frozen=True, slots=True)
class FeatureCostVersion(_Versioned):
    cost_type: str
    cost_usd: Decimal
    cepo_multiplier: Decimal
    is_billable: bool
    tier_multipliers: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class FeatureEntry:
    feature_key: str
    display_name: str
    is_active: bool
    costs: tuple[FeatureCostVersion, ...]

    def cost_at(self, at: datetime) -> FeatureCostVersion:
        version = _version_at(self.costs, at)
        if version is None:
            raise NoPriceInForce(f"feature {self.feature_key!r} has no cost in force at {at.isoformat()}")
        return version


@dataclass(frozen=True, slots=True)
class RateVersion(_Versioned):
    rate: Decimal


@dataclass(frozen=True, slots=True)
class PlanTermsVersion(_Versioned):
    plan_code: str
    family: str
    interval: str
    fee: Decimal
    currency: str
    unit: str
    included_units: Decimal | None
    overage_rate: Decimal
    monthly_spend_cap: Decimal | None
    overage_allowed: bool
    max_overage_pct: Decimal | None
    hard_limit: bool
    markup: Decimal
    requests_per_hour: int | None
    alert_thresholds: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PlanEntry:
    code: str
    name: str
    family: str
    is_public: bool
    is_active: bool
    stripe_price_monthly: str
    stripe_price_yearly: str
    terms: tuple[PlanTermsVersion, ...]

    def terms_at(self, at: datetime) -> PlanTermsVersion:
        version = _version_at(self.terms, at)
        if version is None:
            raise NoPriceInForce(f"plan {self.code!r} has no terms in force at {at.isoformat()}")
        return version


@dataclass(frozen=True, slots=True)
class OperationLimitEntry:
    plan_code: str | None
    operation_type: str
    max_input_tokens: int | None
    max_output_tokens: int | None
    max_total_tokens: int | None
    max_daily_cost_usd: Decimal | None
    max_monthly_cost_usd: Decimal | None
    alert_threshold_pct: int


@dataclass(frozen=True)
class CatalogSnapshot:
    models: Mapping[str, ModelEntry] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    features: Mapping[str, FeatureEntry] = field(default_factory=dict)
    rates: Mapping[str, tuple[RateVersion, ...]] = field(default_factory=dict)
    plans: Mapping[str, PlanEntry] = field(default_factory=dict)
    operation_limits: tuple[OperationLimitEntry, ...] = ()

    @cached_property
    def terms_by_id(self) -> Mapping[int, PlanTermsVersion]:
        """Every plan terms version by its id: a period names its terms, and recording reads them from here."""
        return {t.id: t for plan in self.plans.values() for t in plan.terms}

    @cached_property
    def _resolved(self) -> dict[str, str | None]:
        """Names already resolved in this snapshot: the model id, or None for an unknown name (memo, bounded)."""
        return {}

    @cached_property
    def _lower_names(self) -> Mapping[str, str]:
        """Every id and alias in lower case -> the model id (for names sent in another case)."""
        names = {alias.lower(): model_id for alias, model_id in self.aliases.items()}
        names.update({model_id.lower(): model_id for model_id in self.models})
        return names

    def resolve_model_id(self, name: str) -> str | None:
        """The catalog model id a name means, by the order of docs/pricing-dimensions.md "Names"; None if none."""
        memo = self._resolved
        try:
            return memo[name]
        except KeyError:
            pass
        model_id = model_name_resolve(name, self.models, self.aliases, self._lower_names)
        if len(memo) < _RESOLVED_MEMO_SIZE:
            memo[name] = model_id
        return model_id

    def find_model(self, name: str) -> ModelEntry:
        """The model a name means (id, alias, provider prefix, dated snapshot), active or not; UnknownModel, with
        up to three close names suggested, when the catalog has none."""
        entry = self.models.get(name)
        if entry is not None:
            return entry
        model_id = self.resolve_model_id(name) if isinstance(name, str) else None
        if model_id is None:
            suggestions = self.model_suggestions(name)
            hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
            refused = UnknownModel(f"unknown model {name!r}{hint}")
            refused.suggestions = tuple(suggestions)
            raise refused
        return self.models[model_id]

    def model_suggestions(self, name: str) -> list[str]:
        """Up to three catalog names (ids or aliases) close to `name`, closest first."""
        if not isinstance(name, str) or not name:
            return []
        candidates = list(self._lower_names)
        key = _strip_provider(name.lower())
        close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
        return list(dict.fromkeys(self._lower_names[c] for c in close))

    def active_model(self, name: str) -> ModelEntry:
        entry = self.find_model(name)
        if not entry.is_active:
            raise InactiveModel(f"model {entry.model_id!r} is not active")
        return entry

    def feature(self, key: str) -> FeatureEntry:
        entry = self.features.get(key)
        if entry is None or not entry.is_active:
            raise UnknownFeature(f"unknown feature {key!r}")
        return entry

    def rate_at(self, currency: str, at: datetime) -> RateVersion:
        if currency == "USD":
            return RateVersion(id=0, effective_from=datetime.min.replace(tzinfo=at.tzinfo), rate=Decimal(1))
        version = _version_at(self.rates.get(currency, ()), at)
        if version is None:
            raise NoPriceInForce(f"no USD->{currency} rate in force at {at.isoformat()}")
        return version

    def plan(self, code: str) -> PlanEntry:
        entry = self.plans.get(code)
        if entry is None:
            raise UnknownPlan(f"unknown plan {code!r}")
        return entry

    def operation_limit(self, *, plan_code: str, operation_type: str) -> OperationLimitEntry | None:
        """The plan's own limit for the operation, else the global one, else None."""
        fallback = None
        for limit in self.operation_limits:
            if limit.operation_type != operation_type:
                continue
            if limit.plan_code == plan_code:
                return limit
            if limit.plan_code is None:
                fallback = limit
        return fallback


# --- model names -----------------------------------------------------------------------------------------------

_RESOLVED_MEMO_SIZE = 50_000
# prefixes LiteLLM, gateways and clouds put before a model's own name
PROVIDER_PREFIXES: tuple[str, ...] = (
    "openai", "anthropic", "azure", "azure_ai", "bedrock", "bedrock_converse", "vertex_ai", "vertex_ai_beta",
    "gemini", "google", "openrouter", "groq", "together_ai", "together", "fireworks_ai", "mistral", "deepseek",
    "xai", "cerebras", "cohere", "perplexity", "deepinfra", "anyscale", "sagemaker", "watsonx", "ollama",
    "text-completion-openai", "litellm_proxy", "hosted_vllm", "nvidia_nim", "meta_llama", "dashscope",
)  # fmt: skip
_PREFIXES = frozenset(PROVIDER_PREFIXES)
# Bedrock ids: [region.]vendor.model[-vN[:M]] (us.anthropic.claude-3-5-haiku-20241022-v1:0)
_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|ap|ca|us-gov|global|jp|au)\.")
_BEDROCK_VENDOR = re.compile(r"^(?:anthropic|meta|amazon|cohere|mistral|ai21|deepseek|qwen|openai|writer)\.")
_BEDROCK_VERSION = re.compile(r"(?:-v\d+(?::\d+)?|:\d+)$")
# dated snapshots: -2024-08-06, -20250929, @20250929, -0613 (OpenAI's old month-day), -latest
_DATED = re.compile(r"(?:[-@]\d{4}-\d{2}-\d{2}|[-@]\d{8}|-\d{4}|-latest)$")


def _strip_provider(name: str) -> str:
    while "/" in name:
        head, rest = name.split("/", 1)
        if head not in _PREFIXES:
            break
        name = rest
    return name


def _candidates(name: str) -> list[str]:
    """The names to look up for `name`, in the documented order, without duplicates."""
    out = [name]
    bare = _strip_provider(name)
    out.append(bare)
    bedrock = _BEDROCK_VERSION.sub("", _BEDROCK_VENDOR.sub("", _BEDROCK_REGION.sub("", bare)))
    out.append(bedrock)
    for base in (bare, bedrock):
        undated = _DATED.sub("", base)
        out.append(undated)
    return list(dict.fromkeys(out))


def model_name_resolve(
    name: str, models: Mapping[str, object], aliases: Mapping[str, str], lower_names: Mapping[str, str]
) -> str | None:
    """The model id `name` means. Order: the name as sent, then without provider prefixes (`openai/`,
    `bedrock/`...), then a Bedrock id without region, vendor and version (`us.anthropic.X-v1:0` -> `X`), then
    without a dated-snapshot suffix (`-2024-08-06`, `-20250929`, `@20250929`); at each step the model ids first,
    then the aliases, then both in lower case. The first hit wins; None when no step finds one."""
    if not isinstance(name, str) or not name:
        return None
    for candidate in _candidates(name):
        if candidate in models:
            return candidate
        target = aliases.get(candidate)
        if target is not None:
            return target
        lowered = lower_names.get(candidate.lower())
        if lowered is not None:
            return lowered
    return None
