"""Features and their cost versions in the console."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import timezone

from pricing import console, display, services
from pricing.admin import previews
from pricing.admin.base import VERSION_FIELDSET, CatalogAdmin, Fieldsets, _data, _initial
from pricing.forms import FeatureCostForm, FeatureCreateForm, FeatureUpdateForm
from pricing.models import Feature


def _cost(feature: Feature) -> Any:
    return console.first_or_none(getattr(feature, "costs_in_force", None))


@admin.register(Feature)
class FeatureAdmin(CatalogAdmin):
    list_display = ("feature_key", "display_name", "is_active", "cost_type", "cost", "multipliers", "cepo",
                    "billable", "cost_from")  # fmt: skip
    list_filter = ("is_active",)
    search_fields = ("feature_key", "display_name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Feature]:
        return console.features_with_costs(at=timezone.now())

    @admin.display(description="Cost type")
    def cost_type(self, feature: Feature) -> str:
        cost = _cost(feature)
        return cost.get_cost_type_display() if cost else "no cost"

    @admin.display(description="Cost")
    def cost(self, feature: Feature) -> str:
        cost = _cost(feature)
        return display.plain(cost.cost_usd) if cost else ""

    @admin.display(description="Tier multipliers")
    def multipliers(self, feature: Feature) -> str:
        cost = _cost(feature)
        return (
            console.tier_multipliers_text({t.tier: t.multiplier for t in cost.tier_multipliers.all()}) if cost else ""
        )

    @admin.display(description="CePO")
    def cepo(self, feature: Feature) -> str:
        cost = _cost(feature)
        return display.plain(cost.cepo_multiplier) if cost else ""

    @admin.display(description="Billable", boolean=True)
    def billable(self, feature: Feature) -> bool | None:
        cost = _cost(feature)
        return cost.is_billable if cost else None

    @admin.display(description="Since")
    def cost_from(self, feature: Feature) -> str:
        cost = _cost(feature)
        return f"{cost.effective_from:%Y-%m-%d}" if cost else ""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [path("<path:object_id>/cost/", view(self.cost_view), name="pricing_feature_cost"), *super().get_urls()]

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if object_id is None:
            return self._add(request)
        feature = self._object(request, object_id)
        can_change = self.has_change_permission(request, feature)
        if request.method == "POST":
            self._require_change(request, feature)
        form = FeatureUpdateForm(_data(request), initial={
            "display_name": feature.display_name, "description": feature.description, "is_active": feature.is_active,
        })  # fmt: skip

        def write() -> Feature:
            return services.feature_update(feature=feature, actor=request.user, **form.cleaned_data)

        if self._save(request, form, write) is not None:
            return self._saved(request, feature, f"Feature {feature.feature_key} saved.")
        return self._page(
            request, form=form, obj=feature, title="Change feature" if can_change else "Feature",
            fieldsets=[(None, {"fields": ["display_name", "description", "is_active"]})], can_save=can_change,
            facts=[("Key", feature.feature_key)],
            tables=(console.feature_cost_table(feature, at=timezone.now()),
                    console.audit_table(object_keys=[feature.feature_key])),
            links=[("New cost version", self._url("cost", feature)), self._audit_link(feature.feature_key)]
            if can_change else [],
        )  # fmt: skip

    def _add(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = FeatureCreateForm(_data(request), tiers=self._tiers())

        def write() -> Feature:
            data = form.cleaned_data
            feature = services.feature_create(feature_key=data["feature_key"], display_name=data["display_name"],
                                              description=data["description"], actor=request.user)  # fmt: skip
            self._cost_set(request, feature, form)
            return feature

        feature = self._save(request, form, write)
        if feature is not None:
            return self._saved(request, feature, f"Feature {feature.feature_key} added with its cost.", added=True)
        fieldsets: Fieldsets = [
            (None, {"fields": ["feature_key", "display_name", "description"]}),
            ("Cost", {"fields": ["cost_type", "cost_usd", "cepo_multiplier", "is_billable"]}),
            VERSION_FIELDSET,
        ]
        return self._page(request, form=form, obj=None, title="Add feature", fieldsets=fieldsets)

    def _cost_set(self, request: HttpRequest, feature: Feature, form: FeatureCostForm) -> Any:
        data = form.cleaned_data
        return services.feature_cost_set(
            feature=feature, cost_type=data["cost_type"], cost_usd=data["cost_usd"],
            tier_multipliers=form.tier_multipliers(), cepo_multiplier=data["cepo_multiplier"],
            is_billable=data["is_billable"], effective_from=data["effective_from"], reason=data["reason"],
            actor=request.user,
        )  # fmt: skip

    def cost_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        feature = self._object(request, object_id)
        self._require_change(request, feature)
        current = _cost(feature)
        initial: dict[str, Any] = {}
        multipliers = {}
        if current is not None:
            initial = _initial({"cost_type": current.cost_type, "cost_usd": current.cost_usd,
                                "cepo_multiplier": current.cepo_multiplier, "is_billable": current.is_billable})  # fmt: skip
            multipliers = {t.tier: display.plain(t.multiplier) for t in current.tier_multipliers.all()}
        form = FeatureCostForm(_data(request), initial=initial, tiers=self._tiers(*multipliers),
                               multipliers=multipliers)  # fmt: skip
        write = lambda: self._cost_set(request, feature, form)  # noqa: E731 - saved, or drawn in the preview
        version = self._save(request, form, write)
        if version is not None:
            return self._version_saved(request, feature, version, "cost version")
        return self._version_page(
            request, feature, form, "New cost version",
            **self._change_preview(request, form, write, previews.FEATURE_COST),
            fieldsets=[("Cost", {"fields": ["cost_type", "cost_usd", "cepo_multiplier", "is_billable"]}),
                       VERSION_FIELDSET],
            tables=(console.feature_cost_table(feature, at=timezone.now()),),
            intro="The cost in force is filled in. Tier multipliers: one row per plan; empty means the default.",
        )  # fmt: skip
