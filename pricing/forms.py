"""Console forms. They parse what a person typed into Decimals, dates and lists; the rules (prices >= 0, multipliers
> 0, known currencies, a reason for a backdated version) are the services' and come back as field errors through
`CatalogForm.add_service_errors`, so the console and the API refuse the same things with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.contrib.admin import widgets

from pricing.dimensions import DIMENSIONS, DIMENSIONS_BY_FIELD, MODES
from pricing.errors import CatalogValidationError
from pricing.models import BillingInterval, CostType, Plan, PlanUnit
from pricing.money import CREDITS, CURRENCIES, USD


def _amount(label: str, *, required: bool = True, help_text: str = "", initial: str | None = None) -> Any:
    """A precise amount field (28 digits, 12 places, like the stored one); non-numbers and NaN/inf are refused."""
    return forms.DecimalField(
        label=label, required=required, max_digits=28, decimal_places=12, help_text=help_text, initial=initial
    )


def _count(label: str, help_text: str = "empty: no limit") -> forms.IntegerField:
    return forms.IntegerField(label=label, required=False, help_text=help_text)


class CatalogForm(forms.Form):
    """A console form whose write is a catalog service; `service_fields` maps a service's field name to ours."""

    service_fields: ClassVar[dict[str, str]] = {}

    def add_service_errors(self, exc: CatalogValidationError) -> None:
        if not exc.fields:
            self.add_error(None, str(exc))
        for name, message in exc.fields.items():
            field = self.service_fields.get(name, name)
            if field in self.fields:
                self.add_error(field, message)
            else:
                self.add_error(None, f"{name}: {message}")


class VersionForm(CatalogForm):
    """When a new version starts and why. Empty start: now; a start in the past needs a reason and is marked
    backdated."""

    effective_from = forms.SplitDateTimeField(
        label="Effective from",
        required=False,
        widget=widgets.AdminSplitDateTime,
        help_text="UTC. Empty: now. A time in the past back-dates the version: give a reason.",
    )
    reason = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="kept in the audit",
    )


def tier_choices(codes: list[str], *extra: str) -> list[tuple[str, str]]:
    return [(code, code) for code in dict.fromkeys([*codes, *sorted(extra)])]


# --- models ----------------------------------------------------------------------------------------------------


_DIMENSION_LABELS = {
    "cache_write_per_million": "Cache write (5 min) USD per 1M tokens",
    "cache_write_1h_per_million": "Cache write (1 hour) USD per 1M tokens",
    "reasoning_per_million": "Reasoning USD per 1M tokens",
    "image_input_per_million": "Image input USD per 1M tokens",
    "image_output_per_million": "Image output USD per 1M tokens",
    "audio_input_per_million": "Audio input USD per 1M tokens",
    "audio_output_per_million": "Audio output USD per 1M tokens",
    "price_per_second": "USD per second (audio, video)",
    "price_per_character": "USD per character (speech)",
    "price_per_request": "USD per request (rerank, search, per call)",
}
_JSON_HELP = {
    "image_prices": 'USD per image by size and quality: {"1024x1024/standard": "0.04", "1024x1024/hd": "0.08"}',
    "tiers": 'long-context tiers: [{"above_input_tokens": 200000, "input_per_million": "6", '
    '"output_per_million": "22.5"}]; past the threshold the whole request is priced at the tier',
    "service_tiers": 'batch, flex, priority: {"batch": {"input_per_million": "1.25", "output_per_million": "5"}}',
    "off_peak": 'UTC windows: [{"start": "16:30", "end": "00:30", "input_per_million": "0.135"}]',
}
_JSON_EMPTY: dict[str, Any] = {"image_prices": {}, "tiers": [], "service_tiers": {}, "off_peak": []}


class ModelPriceForm(VersionForm):
    """Every price dimension (docs/pricing-dimensions.md). Built with a model's `mode`, it has only the dimensions
    that mode uses (`prices()` then names only those; the others keep their value in force)."""

    input_per_million = _amount("Input USD per 1M tokens")
    cached_input_per_million = _amount(
        "Cached input USD per 1M tokens", required=False, help_text="empty: the input price"
    )
    output_per_million = _amount("Output USD per 1M tokens")
    image_price = _amount("USD per image", initial="0")

    PRICE_FIELDS = ("input_per_million", "cached_input_per_million", "output_per_million", "image_price")

    def __init__(self, *args: Any, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, label in _DIMENSION_LABELS.items():
            fallback = DIMENSIONS_BY_FIELD[name].fallback
            help_text = f"empty: the {fallback.replace('_per_million', '')} price" if fallback else "empty: not priced"
            self.fields[name] = _amount(label, required=False, help_text=help_text)
        for name, help_text in _JSON_HELP.items():
            self.fields[name] = forms.JSONField(required=False, help_text=help_text, widget=forms.Textarea(
                attrs={"rows": 2, "cols": 80}))  # fmt: skip
        self.price_mode = mode
        if mode is not None:
            for name in self.price_field_names(mode=None):
                if name not in self.price_field_names(mode=mode):
                    del self.fields[name]

    @staticmethod
    def price_field_names(*, mode: str | None) -> list[str]:
        """The price fields a model of `mode` uses (every one when mode is None), in the console's order."""
        scalar = [d.price_field for d in DIMENSIONS if mode is None or mode in d.modes]
        for required in ("input_per_million", "output_per_million"):
            if required not in scalar:
                scalar.append(required)
        structured = ["tiers", "service_tiers", "off_peak"]
        if mode is None or "image_price" in scalar:
            structured.insert(0, "image_prices")
        return [*scalar, *structured]

    def prices(self) -> dict[str, Any]:
        values = {
            name: self.cleaned_data[name]
            for name in self.price_field_names(mode=self.price_mode)
            if name in self.fields
        }
        for name, empty in _JSON_EMPTY.items():
            if name in values and values[name] in (None, ""):
                values[name] = empty
        return values


class _ModelFields(forms.Form):
    display_name = forms.CharField(max_length=200)
    provider = forms.CharField(max_length=100)
    mode = forms.ChoiceField(
        choices=[(m, m) for m in MODES], required=False, initial="chat", help_text="which prices the model uses"
    )

    def clean_mode(self) -> str:
        return self.cleaned_data.get("mode") or "chat"

    max_input_tokens = forms.IntegerField(required=False, min_value=1, help_text="the context window; empty: unknown")
    max_output_tokens = forms.IntegerField(
        required=False, min_value=1, help_text="authorize holds this many output tokens when a request names none"
    )
    allowed_tiers = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="none ticked: every plan may use the model"
    )
    is_active = forms.BooleanField(label="Active", required=False, initial=True)

    def __init__(self, *args: Any, tiers: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["allowed_tiers"].choices = tiers  # type: ignore[attr-defined]


class ModelCreateForm(_ModelFields, ModelPriceForm):
    service_fields = {"alias": "aliases"}

    model_id = forms.CharField(label="Model id", max_length=200, help_text="the id API callers send, e.g. gpt-4o-mini")
    aliases = forms.CharField(
        required=False, max_length=2000, help_text="comma separated provider snapshot names, e.g. gpt-4o-2024-08-06"
    )

    def alias_list(self) -> list[str]:
        return [a.strip() for a in self.cleaned_data["aliases"].split(",") if a.strip()]


class ModelUpdateForm(_ModelFields, CatalogForm):
    alias = forms.CharField(
        label="Add alias", required=False, max_length=200, help_text="a provider snapshot name rated as this model"
    )
    remove_aliases = forms.MultipleChoiceField(
        label="Remove aliases", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="events naming a removed alias are refused as unknown (and kept for replay)",
    )  # fmt: skip

    def __init__(self, *args: Any, aliases: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["remove_aliases"].choices = [(a, a) for a in aliases]  # type: ignore[attr-defined]


# --- features --------------------------------------------------------------------------------------------------


class TierMultiplierForm(forms.Form):
    tier = forms.CharField(widget=forms.HiddenInput, max_length=50)
    multiplier = _amount("Multiplier", required=False)


TierMultiplierFormSet = forms.formset_factory(TierMultiplierForm, extra=0)


class FeatureCostForm(VersionForm):
    """A feature cost version with its per-plan multipliers as a small table (one row per plan code)."""

    cost_type = forms.ChoiceField(choices=CostType.choices)
    cost_usd = _amount(
        "Cost", initial="0", help_text="USD per use or per image, USD per 1M tokens, or the default multiplier"
    )
    cepo_multiplier = _amount("CePO multiplier", initial="1", help_text="applies when the request used CePO")
    is_billable = forms.BooleanField(label="Billable", required=False, initial=True)

    def __init__(
        self,
        *args: Any,
        tiers: list[tuple[str, str]],
        multipliers: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tiers = [code for code, _ in tiers]
        initial = [{"tier": code, "multiplier": (multipliers or {}).get(code)} for code in self.tiers]
        self.tier_formset = TierMultiplierFormSet(self.data if self.is_bound else None, prefix="tiers", initial=initial)

    def is_valid(self) -> bool:
        form_valid = super().is_valid()
        return self.tier_formset.is_valid() and form_valid

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if self.tier_formset.is_bound and self.tier_formset.is_valid():
            tiers = [row.cleaned_data.get("tier") for row in self.tier_formset]
            if set(tiers) - set(self.tiers) or len(tiers) != len(set(tiers)):
                self.add_error(None, "the plans changed while you were editing: reload the page")
        return cleaned

    def tier_multipliers(self) -> dict[str, Decimal]:
        """The rows with a multiplier; an empty row leaves that plan at the default (1, or the cost for a
        `multiplier` feature)."""
        return {
            row.cleaned_data["tier"]: row.cleaned_data["multiplier"]
            for row in self.tier_formset
            if row.cleaned_data.get("multiplier") is not None
        }

    def add_service_errors(self, exc: CatalogValidationError) -> None:
        rows = {row.cleaned_data.get("tier"): row for row in self.tier_formset}
        other = {}
        for name, message in exc.fields.items():
            tier = name.removeprefix("tier_multipliers.")
            if name.startswith("tier_multipliers.") and tier in rows:
                rows[tier].add_error("multiplier", message)
            else:
                other[name] = message
        if other or not exc.fields:
            super().add_service_errors(CatalogValidationError(str(exc), fields=other))


class FeatureUpdateForm(CatalogForm):
    display_name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    is_active = forms.BooleanField(
        label="Active", required=False, help_text="off: events using the feature are refused (and kept for replay)"
    )


class FeatureCreateForm(FeatureCostForm):
    feature_key = forms.SlugField(max_length=100, help_text="the key API callers send, e.g. rag_search")
    display_name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


# --- exchange rates --------------------------------------------------------------------------------------------


class ExchangeRateForm(VersionForm):
    currency = forms.ChoiceField(
        choices=[(code, code) for code in CURRENCIES if code != USD],
        help_text="CREDITS: credits per USD (what a top-up buys)",
    )
    rate = _amount("Units per 1 USD", help_text="e.g. 18.50 ZAR, or 10000 credits")


# --- plans and limits ------------------------------------------------------------------------------------------


class PlanTermsForm(VersionForm):
    """A version of a plan's terms; accounts pick it up when their next period opens."""

    interval = forms.ChoiceField(choices=BillingInterval.choices, initial=BillingInterval.MONTH)
    fee = _amount("Fee", initial="0")
    currency = forms.ChoiceField(choices=[(c, c) for c in CURRENCIES if c != CREDITS], initial=USD)
    unit = forms.ChoiceField(choices=PlanUnit.choices, help_text="what the included quota counts")
    included_units = _amount("Included units", required=False, help_text="empty: unlimited")
    overage_rate = _amount("Overage rate", initial="0", help_text="per unit beyond the included")
    monthly_spend_cap = _amount("Monthly spend cap", required=False, help_text="empty: no cap")
    overage_allowed = forms.BooleanField(required=False, initial=True)
    max_overage_pct = _amount("Max overage %", required=False, help_text="empty: no limit")
    hard_limit = forms.BooleanField(required=False, help_text="refuse requests once the quota is used up")
    markup = _amount("Markup", initial="1", help_text="multiplier on provider cost")
    requests_per_hour = _count("Requests per hour")
    alert_thresholds = forms.CharField(
        initial="75, 90, 100", max_length=200, help_text="whole percentages of the quota, comma separated"
    )

    TERM_FIELDS = (
        "interval", "fee", "currency", "unit", "included_units", "overage_rate", "monthly_spend_cap",
        "overage_allowed", "max_overage_pct", "hard_limit", "markup", "requests_per_hour", "alert_thresholds",
    )  # fmt: skip

    def clean_alert_thresholds(self) -> list[int]:
        text = self.cleaned_data["alert_thresholds"]
        try:
            return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("whole percentages separated by commas, e.g. 75, 90, 100") from None

    def terms(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.TERM_FIELDS}


class PlanCreateForm(PlanTermsForm):
    code = forms.SlugField(max_length=50, help_text="the plan code accounts and tier multipliers refer to")
    name = forms.CharField(max_length=200)
    family = forms.CharField(max_length=50, help_text="plans of one family are compared for recommendations")
    is_public = forms.BooleanField(label="Public", required=False, initial=True)
    stripe_price_monthly = forms.CharField(required=False, max_length=200)
    stripe_price_yearly = forms.CharField(required=False, max_length=200)


class PlanUpdateForm(CatalogForm):
    name = forms.CharField(max_length=200)
    is_public = forms.BooleanField(label="Public", required=False, help_text="shown to customers on the dashboard")
    is_active = forms.BooleanField(
        label="Active", required=False,
        help_text="off: no new subscription or plan change to it; accounts on it keep it",
    )  # fmt: skip
    stripe_price_monthly = forms.CharField(required=False, max_length=200)
    stripe_price_yearly = forms.CharField(required=False, max_length=200)


class OperationLimitForm(CatalogForm):
    plan = forms.ModelChoiceField(queryset=Plan.objects.all(), required=False, empty_label="all plans")
    operation_type = forms.CharField(max_length=100, help_text="e.g. chat_message")
    max_input_tokens = _count("Max input tokens per message")
    max_output_tokens = _count("Max output tokens per message")
    max_total_tokens = _count("Max total tokens per message")
    max_daily_cost_usd = _amount("Max daily cost (USD)", required=False, help_text="empty: no limit")
    max_monthly_cost_usd = _amount("Max monthly cost (USD)", required=False, help_text="empty: no limit")
    alert_threshold_pct = forms.IntegerField(label="Alert at %", initial=80, min_value=0, max_value=100)

    LIMIT_FIELDS = (
        "max_input_tokens", "max_output_tokens", "max_total_tokens", "max_daily_cost_usd", "max_monthly_cost_usd",
        "alert_threshold_pct",
    )  # fmt: skip

    def __init__(self, *args: Any, identity_fixed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if identity_fixed:  # a limit's plan and operation are what it is; changing them is a new limit
            self.fields["plan"].disabled = True
            self.fields["operation_type"].disabled = True

    def limits(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.LIMIT_FIELDS}
