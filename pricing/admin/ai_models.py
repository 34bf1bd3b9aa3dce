"""AI models and their price versions in the console; also the catalog CSV and the cache flush."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.csv_export import csv_write
from pricing import console, display, services
from pricing.admin import notices, previews
from pricing.admin.base import VERSION_FIELDSET, CatalogAdmin, Fieldsets, _data, _initial
from pricing.forms import ModelCreateForm, ModelPriceForm, ModelUpdateForm
from pricing.models import AIModel


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
            notices=notices.model_notices(request, model) if can_change else [],
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
            **self._change_preview(request, form, write, previews.MODEL_PRICE),
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
