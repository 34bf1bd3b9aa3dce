"""The pricing console: the catalog in the Django admin.

Every write calls a pricing service inside the request's transaction, so a price edited here gets the same
validation, versioning, audit and cache invalidation as one changed over the API; a CatalogValidationError comes
back as form errors with nothing written. Version rows (prices, costs, rates, terms) are shown read-only and added
through "new version" forms; nothing is deleted from here; the audit log is read-only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from core.csv_export import csv_write
from pricing import console, display, services
from pricing.errors import CatalogValidationError
from pricing.forms import (
    CatalogForm,
    ExchangeRateForm,
    FeatureCostForm,
    FeatureCreateForm,
    FeatureUpdateForm,
    ModelCreateForm,
    ModelPriceForm,
    ModelUpdateForm,
    OperationLimitForm,
    PlanCreateForm,
    PlanTermsForm,
    PlanUpdateForm,
    tier_choices,
)
from pricing.models import AIModel, CatalogAudit, ExchangeRate, Feature, OperationLimit, Plan
from pricing.selectors import catalog_snapshot

T = TypeVar("T")
Fieldsets = list[tuple[str | None, dict[str, Any]]]
VERSION_FIELDSET = ("When and why", {"fields": ["effective_from", "reason"]})


def _data(request: HttpRequest) -> Any:
    return request.POST if request.method == "POST" else None


def _initial(values: dict[str, Any]) -> dict[str, Any]:
    """Current values as a form shows them: stored decimals without their 12-place padding."""
    return {k: display.plain(v) if hasattr(v, "normalize") else v for k, v in values.items()}


class _RolledBack(Exception):
    pass


def _dry_run(write: Callable[[], object]) -> None:
    """Run a service write and roll it back: the service's own validation, with nothing kept (the preview step)."""
    try:
        with transaction.atomic():
            write()
            raise _RolledBack
    except _RolledBack:
        pass


class CatalogAdmin(admin.ModelAdmin):
    """Shared by the catalog pages: forms that call services, read-only history tables, no deletes."""

    change_form_template = "admin/pricing/catalog_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _object(self, request: HttpRequest, object_id: str) -> Any:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"no {self.opts.verbose_name} {object_id!r}")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _require_change(self, request: HttpRequest, obj: Any) -> None:
        if not self.has_change_permission(request, obj):
            raise PermissionDenied

    def _save(self, request: HttpRequest, form: CatalogForm, write: Callable[[], T]) -> T | None:
        """On a valid POST, call the service; its CatalogValidationError becomes form errors, nothing written."""
        if request.method != "POST" or not form.is_valid():
            return None
        try:
            with transaction.atomic():
                return write()
        except CatalogValidationError as exc:
            form.add_service_errors(exc)
            return None

    def _url(self, name: str, obj: Any = None) -> str:
        args = [obj.pk] if obj is not None else []
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args)

    def _saved(self, request: HttpRequest, obj: Any, message: str, *, added: bool = False) -> HttpResponseRedirect:
        if added:
            self.log_addition(request, obj, "Added in the pricing console")
        else:
            self.log_change(request, obj, message)
        self.message_user(request, message, messages.SUCCESS)
        if "_continue" in request.POST or added:
            return HttpResponseRedirect(self._url("change", obj))
        return HttpResponseRedirect(self._url("changelist"))

    def _version_saved(self, request: HttpRequest, obj: Any, version: Any, what: str) -> HttpResponseRedirect:
        note = " (backdated)" if version.backdated else ""
        message = f"New {what} for {obj} in force from {console.when(version.effective_from)}{note}."
        self.log_change(request, obj, message)
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(self._url("change", obj))

    def _audit_link(self, key: str) -> tuple[str, str]:
        return "Audit log", f"{reverse('admin:pricing_catalogaudit_changelist')}?{urlencode({'object_key': key})}"

    def _page(
        self,
        request: HttpRequest,
        *,
        form: CatalogForm,
        obj: Any,
        title: str,
        fieldsets: Fieldsets,
        tables: Sequence[console.Table] = (),
        links: Iterable[tuple[str, str]] = (),
        facts: Iterable[tuple[str, str]] = (),
        can_save: bool = True,
        template: str | None = None,
        **extra: Any,
    ) -> TemplateResponse:
        adminform = helpers.AdminForm(cast(Any, form), fieldsets, {}, model_admin=self)
        formsets = [form.tier_formset] if isinstance(form, FeatureCostForm) else []
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj) if obj is not None else None,
            "adminform": adminform,
            "object_id": obj.pk if obj is not None else None,
            "original": obj,
            "is_popup": False,
            "to_field": None,
            "media": self.media + adminform.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(cast(Any, form), formsets),
            "preserved_filters": self.get_preserved_filters(request),
            "show_save": can_save,
            "show_save_and_continue": can_save and obj is not None,
            "show_save_and_add_another": False,
            "show_delete": False,
            "tables": tables,
            "links": list(links),
            "facts": list(facts),
            "tier_formset": formsets[0] if formsets else None,
            **extra,
        }
        # render_change_form always answers with a TemplateResponse (the stubs say HttpResponse)
        response = cast(
            TemplateResponse,
            self.render_change_form(request, context, add=obj is None, change=obj is not None, obj=obj),
        )
        if template is not None:
            response.template_name = template
        return response

    def _version_page(self, request: HttpRequest, obj: Any, form: CatalogForm, title: str, **kwargs: Any) -> Any:
        return self._page(request, form=form, obj=obj, title=title, show_save_and_continue=False, **kwargs)

    def _tiers(self, *extra: str) -> list[tuple[str, str]]:
        return tier_choices(console.plan_codes(), *extra)


# --- models ----------------------------------------------------------------------------------------------------


def _price_column(field: str, description: str) -> Callable[[Any, AIModel], str]:
    @admin.display(description=description)
    def column(self: Any, model: AIModel) -> str:
        price = console.first_or_none(getattr(model, "prices_in_force", None))
        if price is None:
            return "no price"
        value = getattr(price, field)
        return display.plain(value) if value is not None else "= input"

    return column


@admin.register(AIModel)
class AIModelAdmin(CatalogAdmin):
    list_display = ("model_id", "display_name", "provider", "is_active", "input_price", "cached_input_price",
                    "output_price", "image_price", "price_from", "tiers")  # fmt: skip
    list_filter = ("is_active", "provider")
    search_fields = ("model_id", "display_name", "aliases__alias")
    actions = ("activate", "deactivate", "flush_cache")

    input_price = _price_column("input_per_million", "In $/1M")
    cached_input_price = _price_column("cached_input_per_million", "Cached $/1M")
    output_price = _price_column("output_per_million", "Out $/1M")
    image_price = _price_column("image_price", "$/image")

    def get_queryset(self, request: HttpRequest) -> QuerySet[AIModel]:
        return console.models_with_prices(at=timezone.now())

    @admin.display(description="Since")
    def price_from(self, model: AIModel) -> str:
        price = console.first_or_none(getattr(model, "prices_in_force", None))
        return f"{price.effective_from:%Y-%m-%d}" if price is not None else ""

    @admin.display(description="Plans")
    def tiers(self, model: AIModel) -> str:
        """The plans that may use it, counted when there are many (the model page lists them)."""
        tiers = model.allowed_tiers or []
        if not tiers:
            return "all plans"
        return ", ".join(tiers) if len(tiers) <= 3 else f"{len(tiers)} plans"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("catalog.csv", view(self.csv_view), name="pricing_catalog_csv"),
            path("flush-cache/", view(require_POST(self.flush_view)), name="pricing_catalog_flush"),
            path("<path:object_id>/price/", view(self.price_view), name="pricing_aimodel_price"),
            *super().get_urls(),
        ]

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if object_id is None:
            return self._add(request)
        return self._change(request, self._object(request, object_id))

    def _add(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ModelCreateForm(_data(request), tiers=self._tiers())

        def write() -> AIModel:
            data = form.cleaned_data
            model = services.model_create(
                model_id=data["model_id"], display_name=data["display_name"], provider=data["provider"],
                allowed_tiers=data["allowed_tiers"], aliases=form.alias_list(), is_active=data["is_active"],
                mode=data["mode"], max_input_tokens=data["max_input_tokens"],
                max_output_tokens=data["max_output_tokens"], actor=request.user,
            )  # fmt: skip
            services.model_price_set(
                model=model, **form.prices(), effective_from=data["effective_from"], reason=data["reason"],
                actor=request.user,
            )  # fmt: skip
            return model

        model = self._save(request, form, write)
        if model is not None:
            return self._saved(request, model, f"Model {model.model_id} added with its first price.", added=True)
        fieldsets: Fieldsets = [
            (
                None,
                {
                    "fields": [
                        "model_id",
                        "display_name",
                        "provider",
                        "mode",
                        "max_input_tokens",
                        "max_output_tokens",
                        "is_active",
                        "allowed_tiers",
                        "aliases",
                    ]
                },
            ),
            (
                "First price (USD): fill in the dimensions the model is billed for; leave the others empty",
                {"fields": ModelPriceForm.price_field_names(mode=None)},
            ),
            VERSION_FIELDSET,
        ]
        return self._page(request, form=form, obj=None, title="Add model", fieldsets=fieldsets)

    def _change(self, request: HttpRequest, model: AIModel) -> HttpResponse:
        can_change = self.has_change_permission(request, model)
        if request.method == "POST":
            self._require_change(request, model)
        initial = {"display_name": model.display_name, "provider": model.provider, "mode": model.mode,
                   "max_input_tokens": model.max_input_tokens, "max_output_tokens": model.max_output_tokens,
                   "allowed_tiers": model.allowed_tiers, "is_active": model.is_active}  # fmt: skip
        aliases = list(model.aliases.order_by("alias").values_list("alias", flat=True))
        form = ModelUpdateForm(
            _data(request), initial=initial, tiers=self._tiers(*model.allowed_tiers), aliases=aliases
        )

        def write() -> AIModel:
            data = form.cleaned_data
            services.model_update(model=model, display_name=data["display_name"], provider=data["provider"],
                                  allowed_tiers=data["allowed_tiers"], mode=data["mode"],
                                  max_input_tokens=data["max_input_tokens"],
                                  max_output_tokens=data["max_output_tokens"], actor=request.user)  # fmt: skip
            services.model_set_active(model=model, is_active=data["is_active"], actor=request.user)
            for alias in data["remove_aliases"]:
                services.model_alias_remove(model=model, alias=alias, actor=request.user)
            if data["alias"]:
                services.model_alias_add(model=model, alias=data["alias"], actor=request.user)
            return model

        if self._save(request, form, write) is not None:
            return self._saved(request, model, f"Model {model.model_id} saved.")
        now = timezone.now()
        keys = [model.model_id, *aliases]
        fields = [
            "display_name",
            "provider",
            "mode",
            "max_input_tokens",
            "max_output_tokens",
            "is_active",
            "allowed_tiers",
            "alias",
        ]
        return self._page(
            request,
            form=form,
            obj=model,
            title="Change model" if can_change else "View model",
            fieldsets=[(None, {"fields": [*fields, "remove_aliases"] if aliases else fields})],
            can_save=can_change,
            tables=(
                console.model_price_table(model, at=now),
                console.model_alias_table(model),
                console.audit_table(object_keys=keys),
            ),
            links=[("New price version", self._url("price", model)), self._audit_link(model.model_id)]
            if can_change
            else [],
            intro="Prices are versions: add one with New price version; the one in force is never edited.",
        )

    def price_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        model = self._object(request, object_id)
        self._require_change(request, model)
        current = console.first_or_none(getattr(model, "prices_in_force", None))
        every = ModelPriceForm.price_field_names(mode=None)
        in_force = {name: getattr(current, name) for name in every} if current else {}
        initial = _initial({k: v for k, v in in_force.items() if v not in ({}, [])})
        form = ModelPriceForm(_data(request), initial=initial, mode=model.mode)

        def write() -> Any:
            data = form.cleaned_data
            # the dimensions the model's mode does not use keep their value in force
            prices = {**{k: v for k, v in in_force.items() if v is not None}, **form.prices()}
            return services.model_price_set(model=model, **prices, effective_from=data["effective_from"],
                                            reason=data["reason"], actor=request.user)  # fmt: skip

        version = self._save(request, form, write)
        if version is not None:
            return self._version_saved(request, model, version, "price version")
        return self._version_page(
            request, model, form, "New price version",
            fieldsets=[(f"Prices (USD) of a {model.mode} model",
                        {"fields": ModelPriceForm.price_field_names(mode=model.mode)}), VERSION_FIELDSET],
            tables=(console.model_price_table(model, at=timezone.now()),),
            intro="The current price is filled in; change what changes. The version in force stays as it is.",
        )  # fmt: skip

    @admin.action(description="Activate the selected models", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> None:
        self._set_active(request, queryset, is_active=True)

    @admin.action(description="Deactivate the selected models (requests for them are refused)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> None:
        self._set_active(request, queryset, is_active=False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[AIModel], *, is_active: bool) -> None:
        changed = [model for model in queryset if model.is_active != is_active]
        with transaction.atomic():
            for model in changed:
                services.model_set_active(model=model, is_active=is_active, actor=request.user)
                self.log_change(request, model, "Activated" if is_active else "Deactivated")
        state = "activated" if is_active else "deactivated"
        if changed:
            self.message_user(request, f"{len(changed)} {state}: {', '.join(m.model_id for m in changed)}.")
        else:
            self.message_user(request, f"Nothing to do: the selected models were already {state}.", messages.WARNING)

    @admin.action(description="Flush the pricing cache (every process rebuilds the catalog)", permissions=["change"])
    def flush_cache(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> None:
        services.catalog_cache_flush(actor=request.user)
        self.message_user(request, "Pricing cache flushed: the next request rebuilds the catalog from the database.")

    def flush_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        services.catalog_cache_flush(actor=request.user)
        self.message_user(request, "Pricing cache flushed: the next request rebuilds the catalog from the database.")
        return HttpResponseRedirect(reverse("admin:index"))

    def csv_view(self, request: HttpRequest) -> HttpResponse:
        """The catalog in force now as CSV: one section per table (`?section=models` etc. for one table alone)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        sections = console.catalog_csv_sections(at=now)
        wanted = request.GET.get("section")
        if wanted:
            sections = tuple(s for s in sections if s.name == wanted)
            if not sections:
                raise Http404(f"no catalog section {wanted!r}")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"tokenledger-catalog{'-' + wanted if wanted else ''}-{now:%Y%m%d-%H%M}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        csv_write(response, console.catalog_csv_rows(sections))
        return response


# --- features --------------------------------------------------------------------------------------------------


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
        version = self._save(request, form, lambda: self._cost_set(request, feature, form))
        if version is not None:
            return self._version_saved(request, feature, version, "cost version")
        return self._version_page(
            request, feature, form, "New cost version",
            fieldsets=[("Cost", {"fields": ["cost_type", "cost_usd", "cepo_multiplier", "is_billable"]}),
                       VERSION_FIELDSET],
            tables=(console.feature_cost_table(feature, at=timezone.now()),),
            intro="The cost in force is filled in. Tier multipliers: one row per plan; empty means the default.",
        )  # fmt: skip


# --- exchange rates --------------------------------------------------------------------------------------------


@admin.register(ExchangeRate)
class ExchangeRateAdmin(CatalogAdmin):
    """Rate versions: read-only history; a new rate is added through an impact preview and saved on confirm."""

    list_display = ("currency", "rate_per_usd", "effective_from", "status", "backdated", "set_by", "reason")
    list_filter = ("currency", "backdated")
    search_fields = ("currency", "reason")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExchangeRate]:
        return console.exchange_rates_with_status(at=timezone.now())

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a version is never edited; add a new one

    @admin.display(description="Units per USD", ordering="rate")
    def rate_per_usd(self, rate: ExchangeRate) -> str:
        return display.grouped(rate.rate)

    @admin.display(description="Status")
    def status(self, rate: ExchangeRate) -> str:
        return console.rate_status(rate, timezone.now())

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        rate = self._object(request, object_id)
        tables = (console.exchange_rate_table(rate.currency, at=timezone.now()),)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "tables": tables})

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Step 1: the form. Step 2 (valid, checked by the service and rolled back): the impact preview with the
        values carried in hidden fields. Step 3 (`_confirm`): the service writes the version."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ExchangeRateForm(_data(request), initial={"currency": request.GET.get("currency", "CREDITS")})

        def write() -> ExchangeRate:
            data = form.cleaned_data
            return services.exchange_rate_set(currency=data["currency"], rate=data["rate"], reason=data["reason"],
                                              effective_from=data["effective_from"], actor=request.user)  # fmt: skip

        fieldsets: Fieldsets = [(None, {"fields": ["currency", "rate"]}), VERSION_FIELDSET]
        if request.method == "POST" and "_confirm" in request.POST:
            version = self._save(request, form, write)
            if version is not None:
                self.log_addition(request, version, "Added in the pricing console after the impact preview")
                note = " (backdated)" if version.backdated else ""
                self.message_user(
                    request,
                    f"USD → {version.currency} is {display.grouped(version.rate)} from "
                    f"{console.when(version.effective_from)}{note}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._url("changelist"))
        elif request.method == "POST" and "_edit" not in request.POST and form.is_valid():
            try:
                _dry_run(write)
            except CatalogValidationError as exc:
                form.add_service_errors(exc)
            else:
                now = timezone.now()
                impact = console.rate_change_impact(
                    catalog_snapshot(), currency=form.cleaned_data["currency"], new_rate=form.cleaned_data["rate"],
                    at=now, packs_usd=settings.TOPUP_PACKS_USD,
                )  # fmt: skip
                return self._page(
                    request, form=form, obj=None, title="Check the impact, then confirm", fieldsets=fieldsets,
                    template="admin/pricing/exchangerate/preview.html", impact=impact,
                    tables=(console.exchange_rate_table(impact.currency, at=now),),
                )  # fmt: skip
        return self._page(
            request, form=form, obj=None, title="New exchange rate", fieldsets=fieldsets,
            template="admin/pricing/exchangerate/form.html",
            intro="Next you will see what the top-up packs and a typical request cost before and after; "
            "nothing is saved until you confirm.",
        )  # fmt: skip


# --- plans and limits ------------------------------------------------------------------------------------------


def _terms(plan: Plan) -> Any:
    return console.first_or_none(getattr(plan, "terms_in_force", None))


PLAN_TERMS_FIELDSETS: Fieldsets = [
    ("Price", {"fields": ["interval", "fee", "currency", "markup"]}),
    ("Quota and overage", {"fields": ["unit", "included_units", "overage_rate", "monthly_spend_cap",
                                      "overage_allowed", "max_overage_pct", "hard_limit"]}),
    ("Limits and alerts", {"fields": ["requests_per_hour", "alert_thresholds"]}),
    VERSION_FIELDSET,
]  # fmt: skip


@admin.register(Plan)
class PlanAdmin(CatalogAdmin):
    list_display = ("code", "name", "family", "is_public", "is_active", "fee", "unit", "included", "overage_rate",
                    "cap", "markup", "requests_per_hour")  # fmt: skip
    list_filter = ("family", "is_public", "is_active")
    search_fields = ("code", "name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return console.plans_with_terms(at=timezone.now())

    @admin.display(description="Fee")
    def fee(self, plan: Plan) -> str:
        t = _terms(plan)
        return f"{display.plain(t.fee)} {t.currency} / {t.interval}" if t else "no terms"

    @admin.display(description="Unit")
    def unit(self, plan: Plan) -> str:
        t = _terms(plan)
        return t.unit if t else ""

    @admin.display(description="Included")
    def included(self, plan: Plan) -> str:
        t = _terms(plan)
        return (display.plain(t.included_units) or "unlimited") if t else ""

    @admin.display(description="Overage rate")
    def overage_rate(self, plan: Plan) -> str:
        t = _terms(plan)
        return display.plain(t.overage_rate) if t else ""

    @admin.display(description="Monthly cap")
    def cap(self, plan: Plan) -> str:
        t = _terms(plan)
        return (display.plain(t.monthly_spend_cap) or "none") if t else ""

    @admin.display(description="Markup")
    def markup(self, plan: Plan) -> str:
        t = _terms(plan)
        return display.plain(t.markup) if t else ""

    @admin.display(description="Requests/hour")
    def requests_per_hour(self, plan: Plan) -> str:
        t = _terms(plan)
        return str(t.requests_per_hour or "no limit") if t else ""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [path("<path:object_id>/terms/", view(self.terms_view), name="pricing_plan_terms"), *super().get_urls()]

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if object_id is None:
            return self._add(request)
        plan = self._object(request, object_id)
        can_change = self.has_change_permission(request, plan)
        if request.method == "POST":
            self._require_change(request, plan)
        fields = ["name", "is_public", "is_active", "stripe_price_monthly", "stripe_price_yearly"]
        form = PlanUpdateForm(_data(request), initial={name: getattr(plan, name) for name in fields})

        def write() -> Plan:
            return services.plan_update(plan=plan, actor=request.user, **form.cleaned_data)

        if self._save(request, form, write) is not None:
            return self._saved(request, plan, f"Plan {plan.code} saved.")
        return self._page(
            request, form=form, obj=plan, title="Change plan" if can_change else "Plan",
            fieldsets=[(None, {"fields": fields})], can_save=can_change,
            facts=[("Code", plan.code), ("Family", plan.family)],
            tables=(console.plan_terms_table(plan, at=timezone.now()), console.plan_limits_table(plan),
                    console.audit_table(object_keys=[plan.code])),
            links=[("New terms version", self._url("terms", plan)), self._audit_link(plan.code)] if can_change else [],
        )  # fmt: skip

    def _add(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PlanCreateForm(_data(request))

        def write() -> Plan:
            data = form.cleaned_data
            plan = services.plan_create(
                code=data["code"], name=data["name"], family=data["family"], is_public=data["is_public"],
                stripe_price_monthly=data["stripe_price_monthly"], stripe_price_yearly=data["stripe_price_yearly"],
                actor=request.user,
            )  # fmt: skip
            services.plan_terms_set(plan=plan, effective_from=data["effective_from"], reason=data["reason"],
                                    actor=request.user, **form.terms())  # fmt: skip
            return plan

        plan = self._save(request, form, write)
        if plan is not None:
            return self._saved(request, plan, f"Plan {plan.code} added with its terms.", added=True)
        fieldsets: Fieldsets = [
            (None, {"fields": ["code", "name", "family", "is_public", "stripe_price_monthly", "stripe_price_yearly"]}),
            *PLAN_TERMS_FIELDSETS,
        ]
        return self._page(request, form=form, obj=None, title="Add plan", fieldsets=fieldsets)

    def terms_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plan = self._object(request, object_id)
        self._require_change(request, plan)
        current = _terms(plan)
        initial: dict[str, Any] = {}
        if current is not None:
            initial = _initial({name: getattr(current, name) for name in PlanTermsForm.TERM_FIELDS})
            initial["alert_thresholds"] = ", ".join(str(t) for t in current.alert_thresholds or [])
        form = PlanTermsForm(_data(request), initial=initial)

        def write() -> Any:
            data = form.cleaned_data
            return services.plan_terms_set(plan=plan, effective_from=data["effective_from"], reason=data["reason"],
                                           actor=request.user, **form.terms())  # fmt: skip

        version = self._save(request, form, write)
        if version is not None:
            return self._version_saved(request, plan, version, "terms version")
        return self._version_page(
            request, plan, form, "New terms version", fieldsets=PLAN_TERMS_FIELDSETS,
            tables=(console.plan_terms_table(plan, at=timezone.now()),),
            intro="Accounts pick up new terms when their next period opens; a running period keeps its terms.",
        )  # fmt: skip


@admin.register(OperationLimit)
class OperationLimitAdmin(CatalogAdmin):
    list_display = ("operation_type", "plan_code", "max_input_tokens", "max_output_tokens", "max_total_tokens",
                    "max_daily_cost_usd", "max_monthly_cost_usd", "alert_threshold_pct")  # fmt: skip
    list_filter = ("operation_type", "plan")
    list_select_related = ("plan",)

    @admin.display(description="Plan", ordering="plan__code")
    def plan_code(self, limit: OperationLimit) -> str:
        return limit.plan.code if limit.plan else "all plans"

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        limit = self._object(request, object_id) if object_id is not None else None
        if limit is None and not self.has_add_permission(request):
            raise PermissionDenied
        if limit is not None and request.method == "POST":
            self._require_change(request, limit)
        initial = {}
        if limit is not None:
            initial = _initial({"plan": limit.plan, "operation_type": limit.operation_type,
                                **{name: getattr(limit, name) for name in OperationLimitForm.LIMIT_FIELDS}})  # fmt: skip
        form = OperationLimitForm(_data(request), initial=initial, identity_fixed=limit is not None)
        if limit is None and request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if console.operation_limit_exists(plan=data["plan"], operation_type=data["operation_type"]):
                form.add_error("operation_type", "this plan already has a limit for this operation: change that one")

        def write() -> OperationLimit:
            data = form.cleaned_data
            return services.operation_limit_set(plan=data["plan"], operation_type=data["operation_type"],
                                                actor=request.user, **form.limits())  # fmt: skip

        saved = self._save(request, form, write)
        if saved is not None:
            return self._saved(request, saved, f"Limits for {saved} saved.", added=limit is None)
        can_change = limit is None or self.has_change_permission(request, limit)
        return self._page(
            request, form=form, obj=limit, title="Add operation limit" if limit is None else "Operation limit",
            fieldsets=[(None, {"fields": ["plan", "operation_type"]}),
                       ("Per message", {"fields": ["max_input_tokens", "max_output_tokens", "max_total_tokens"]}),
                       ("Cost", {"fields": ["max_daily_cost_usd", "max_monthly_cost_usd", "alert_threshold_pct"]})],
            can_save=can_change,
        )  # fmt: skip


# --- the audit log ---------------------------------------------------------------------------------------------


@admin.register(CatalogAudit)
class CatalogAuditAdmin(admin.ModelAdmin):
    """Read-only: the record of every catalog write."""

    list_display = ("at", "actor", "action", "object_type", "object_key", "reason")
    list_filter = ("action", "object_type")
    search_fields = ("object_key", "reason")
    date_hierarchy = "at"
    fields = ("at", "actor", "action", "object_type", "object_key", "reason", "before_values", "after_values")
    readonly_fields = fields
    list_select_related = ("actor",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Before")
    def before_values(self, entry: CatalogAudit) -> str:
        return self._json(entry.before)

    @admin.display(description="After")
    def after_values(self, entry: CatalogAudit) -> str:
        return self._json(entry.after)

    def _json(self, value: Any) -> str:
        if value is None:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


# --- the console home ------------------------------------------------------------------------------------------


def _with_pricing_summary(index: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The admin home with the pricing cards: the stock index view with the catalog summary in its context."""

    @functools.wraps(index)
    def view(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = dict(extra_context or {})
        models = admin.site.get_model_admin(AIModel)
        if models.has_view_permission(request):
            context["pricing_cards"] = console.summary_cards(console.catalog_summary())
            context["pricing_can_flush"] = models.has_change_permission(request)
        return index(request, extra_context=context)

    return view


# The default site is shared by every app; only its index view is wrapped, before its URLs are built.
admin.site.index = _with_pricing_summary(admin.site.index)  # type: ignore[method-assign, assignment]
