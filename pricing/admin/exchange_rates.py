"""Exchange rates in the console: a new rate is added only after its impact preview is confirmed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from pricing import console, display, services
from pricing.admin.base import VERSION_FIELDSET, CatalogAdmin, Fieldsets, _data, _dry_run
from pricing.errors import CatalogValidationError
from pricing.forms import ExchangeRateForm
from pricing.models import ExchangeRate
from pricing.selectors import catalog_snapshot


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
