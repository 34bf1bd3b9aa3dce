"""Plans with their terms versions, and the per-operation limits of plans, in the console."""

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
from pricing.forms import OperationLimitForm, PlanCreateForm, PlanTermsForm, PlanUpdateForm
from pricing.models import OperationLimit, Plan


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
            **self._change_preview(request, form, write, previews.PLAN_TERMS),
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
