"""The pricing HTTP API: catalog reads for signed-in callers, catalog writes for staff.

Each view parses its input, calls one selector or service and shapes the answer; every write adds a version
through pricing.services (or pricing.price_import), so it is validated, audited and refreshes the cached catalog.
Request and response serializers are in pricing/serializers.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import parse_etags, quote_etag
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import BasePermission, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.parsers import DecimalJSONParser
from core.sign_in import BasicAuthentication
from pricing import services
from pricing.dimensions import STRUCTURED_PRICE_FIELDS
from pricing.errors import CatalogValidationError, UnknownPlan
from pricing.models import AIModel, ModelPrice
from pricing.price_import import model_upsert
from pricing.selectors import (
    catalog_next_change,
    exchange_rate_list,
    feature_by_key,
    feature_cost_list,
    feature_cost_values_at,
    model_aliases,
    model_by_id,
    model_price_list,
    plan_by_code,
    plan_terms_values_at,
)
from pricing.serializers import (
    DIMENSION_PRICE_FIELDS,
    AliasInput,
    ExchangeRateInput,
    ExchangeRateOutput,
    ExchangeRateVersionOutput,
    FeatureCostInput,
    FeatureCostOutput,
    FeatureListOutput,
    FeatureOutput,
    FeatureUpdateInput,
    ModelDetailOutput,
    ModelListOutput,
    ModelPutInput,
    PlanOutput,
    PlanTermsInput,
    PlanTermsOutput,
    PlanUpdateInput,
    TierQuery,
)

# --- Who may call ---------------------------------------------------------------------------------------------------
# Catalog reads: any signed-in user or staff member. The billing app's API-key authentication joins this list when it
# lands, which opens the reads to an account's backend. Basic comes first so an anonymous caller gets 401, not 403.
CATALOG_READ_AUTHENTICATION: list[type[BaseAuthentication]] = [BasicAuthentication, SessionAuthentication]
CATALOG_READ_PERMISSIONS: list[type[BasePermission]] = [IsAuthenticated]
# Catalog writes: staff users only (`is_staff`), by session or HTTP Basic.
CATALOG_ADMIN_AUTHENTICATION: list[type[BaseAuthentication]] = [BasicAuthentication, SessionAuthentication]
CATALOG_ADMIN_PERMISSIONS: list[type[BasePermission]] = [IsAdminUser]

# The services' names for model prices, as the API names them.
MODEL_PRICE_INPUTS = {
    "input_price_per_million": "input_per_million",
    "cached_input_price_per_million": "cached_input_per_million",
    "output_price_per_million": "output_per_million",
    "image_price_per_unit": "image_price",
}
API_FIELD_NAMES = {service: api for api, service in MODEL_PRICE_INPUTS.items()}


# The project's error shape (config/api_errors.py), for the schema.
CatalogErrorOutput = inline_serializer(
    name="CatalogError",
    fields={
        "error": serializers.CharField(help_text="a stable code: invalid, malformed_request, not_found, ..."),
        "message": serializers.CharField(),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), help_text="field name -> messages"
        ),
    },
)


READ_ERRORS = {
    401: OpenApiResponse(CatalogErrorOutput, description="not signed in"),
    403: OpenApiResponse(CatalogErrorOutput, description="not allowed"),
}
WRITE_ERRORS = {
    400: OpenApiResponse(CatalogErrorOutput, description="invalid input; `fields` says which and why"),
    401: OpenApiResponse(CatalogErrorOutput, description="not signed in"),
    403: OpenApiResponse(CatalogErrorOutput, description="not a staff user"),
}
NOT_FOUND = {404: OpenApiResponse(CatalogErrorOutput, description="no such catalog entry")}


def _invalid(exc: CatalogValidationError) -> ValidationError:
    """A refused catalog write as a 400 with field errors named as the API names them."""
    if not exc.fields:
        return ValidationError({"non_field_errors": [exc.message]})
    return ValidationError({API_FIELD_NAMES.get(name, name): [message] for name, message in exc.fields.items()})


def _parsed(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _shows_provider_prices(request: Request) -> bool:
    return bool(settings.PRICING_SHOW_PROVIDER_PRICES or getattr(request.user, "is_staff", False))


class CatalogReadApi(APIView):
    authentication_classes = CATALOG_READ_AUTHENTICATION
    permission_classes = CATALOG_READ_PERMISSIONS

    def catalog_response(self, request: Request, shown: Any, *, now: datetime) -> Response:
        """The answer with cache headers: private, fresh until the catalog TTL or the next scheduled price change
        (whichever is sooner), and an ETag of the body so a revalidation costs a 304."""
        body = json.dumps(shown, sort_keys=True, separators=(",", ":"), default=str).encode()
        etag = quote_etag(hashlib.sha256(body).hexdigest()[:32])
        max_age = settings.PRICING_CACHE_TTL_SECONDS
        next_change = catalog_next_change(at=now)
        if next_change is not None:
            max_age = max(0, min(max_age, int((next_change - now).total_seconds())))
        asked = {tag.removeprefix("W/") for tag in parse_etags(request.headers.get("If-None-Match", ""))}
        response = Response(status=status.HTTP_304_NOT_MODIFIED) if etag in asked or "*" in asked else Response(shown)
        response["ETag"] = etag
        patch_cache_control(response, private=True, max_age=max_age)
        patch_vary_headers(response, ("Authorization", "Cookie"))
        return response


class CatalogAdminApi(APIView):
    authentication_classes = CATALOG_ADMIN_AUTHENTICATION
    permission_classes = CATALOG_ADMIN_PERMISSIONS
    parser_classes = [DecimalJSONParser]


# --- Reads ----------------------------------------------------------------------------------------------------------


class ModelListApi(CatalogReadApi):
    @extend_schema(
        operation_id="tokens_models_list",
        summary="Active models with the prices in force",
        description=(
            "Models that are active and have a price in force now, optionally only those a plan (tier) may use. "
            "Money is a decimal string. When PRICING_SHOW_PROVIDER_PRICES is off, callers who are not staff get "
            "only the prices in credits (the `*_price_*` USD fields are left out). Cached for the catalog TTL "
            "(Cache-Control max-age) with an ETag."
        ),
        parameters=[TierQuery],
        responses={
            200: ModelListOutput(many=True),
            304: OpenApiResponse(description="not modified (If-None-Match)"),
            400: OpenApiResponse(CatalogErrorOutput, description="unknown tier"),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        query = _parsed(TierQuery, request.query_params)
        now = timezone.now()
        try:
            rows = model_price_list(at=now, tier=query.get("tier"))
        except UnknownPlan as exc:
            raise ValidationError({"tier": [str(exc)]}) from None
        context = {"show_provider_prices": _shows_provider_prices(request)}
        return self.catalog_response(request, ModelListOutput(rows, many=True, context=context).data, now=now)


class FeatureListApi(CatalogReadApi):
    @extend_schema(
        operation_id="tokens_features_list",
        summary="Active features with the costs in force",
        description=(
            "Every active feature with its cost in force; `is_billable` says whether it is charged. When "
            "PRICING_SHOW_PROVIDER_PRICES is off, callers who are not staff do not get `cost_usd` (except for "
            "`multiplier` features, where it is a factor, not a price)."
        ),
        responses={
            200: FeatureListOutput(many=True),
            304: OpenApiResponse(description="not modified (If-None-Match)"),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        context = {"show_provider_prices": _shows_provider_prices(request)}
        shown = FeatureListOutput(feature_cost_list(at=now), many=True, context=context).data
        return self.catalog_response(request, shown, now=now)


class ExchangeRateListApi(CatalogReadApi):
    @extend_schema(
        operation_id="tokens_exchange_list",
        summary="Exchange rates in force",
        description="The USD -> currency rates in force, CREDITS included (credits per 1 USD).",
        responses={
            200: ExchangeRateOutput(many=True),
            304: OpenApiResponse(description="not modified (If-None-Match)"),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        return self.catalog_response(request, ExchangeRateOutput(exchange_rate_list(at=now), many=True).data, now=now)


# --- Staff writes: models -------------------------------------------------------------------------------------------


def _model_detail(model: AIModel, *, created: bool = False, price_version: ModelPrice | None = None) -> Any:
    return ModelDetailOutput(
        {
            "model_id": model.model_id,
            "display_name": model.display_name,
            "provider": model.provider,
            "is_active": model.is_active,
            "allowed_tiers": model.allowed_tiers,
            "mode": model.mode,
            "max_input_tokens": model.max_input_tokens,
            "max_output_tokens": model.max_output_tokens,
            "aliases": model_aliases(model=model),
            "created": created,
            "price_version": price_version,
        }
    ).data


def _model_or_404(model_id: str) -> AIModel:
    model = model_by_id(model_id=model_id)
    if model is None:
        raise NotFound(f"no model {model_id!r}")
    return model


class ModelUpsertApi(CatalogAdminApi):
    @extend_schema(
        operation_id="admin_tokens_model_put",
        summary="Create or update a model; add a price version",
        description=(
            "Creates the model when it does not exist (`provider` is then required), changes the descriptive "
            "fields given, and adds a price version when any price is given; prices left out keep their value in "
            "force at `effective_from` (default now). A version that starts in the past needs a `reason`."
        ),
        request=ModelPutInput,
        responses={200: ModelDetailOutput, 201: ModelDetailOutput, **WRITE_ERRORS},
    )
    def put(self, request: Request, model_id: str) -> Response:
        given = _parsed(ModelPutInput, request.data)
        prices = {service: given[api] for api, service in MODEL_PRICE_INPUTS.items() if api in given}
        prices.update(
            {name: given[name] for name in (*DIMENSION_PRICE_FIELDS, *STRUCTURED_PRICE_FIELDS) if name in given}
        )
        limits: dict[str, Any] = {
            name: given[name] for name in ("mode", "max_input_tokens", "max_output_tokens") if name in given
        }
        try:
            result = model_upsert(
                model_id=model_id,
                display_name=given.get("display_name"),
                provider=given.get("provider"),
                allowed_tiers=given.get("allowed_tiers"),
                limits=limits,
                prices=prices,
                effective_from=given.get("effective_from"),
                reason=given["reason"],
                actor=request.user,
            )
        except CatalogValidationError as exc:
            raise _invalid(exc) from None
        shown = _model_detail(result.model, created=result.created, price_version=result.price_version)
        return Response(shown, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class ModelAliasAddApi(CatalogAdminApi):
    @extend_schema(
        operation_id="admin_tokens_model_alias_add",
        summary="Add an alias (a provider's snapshot name) to a model",
        request=AliasInput,
        responses={201: ModelDetailOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def post(self, request: Request, model_id: str) -> Response:
        model = _model_or_404(model_id)
        given = _parsed(AliasInput, request.data)
        try:
            services.model_alias_add(model=model, alias=given["alias"], actor=request.user)
        except CatalogValidationError as exc:
            raise _invalid(exc) from None
        return Response(_model_detail(model), status=status.HTTP_201_CREATED)


class ModelAliasRemoveApi(CatalogAdminApi):
    @extend_schema(
        operation_id="admin_tokens_model_alias_remove",
        summary="Remove an alias: events that name it are refused as unknown (and kept for replay)",
        request=None,
        responses={200: ModelDetailOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def delete(self, request: Request, model_id: str, alias: str) -> Response:
        model = _model_or_404(model_id)
        if not services.model_alias_remove(model=model, alias=alias, actor=request.user):
            raise NotFound(f"model {model_id!r} has no alias {alias!r}")
        return Response(_model_detail(model))


class ModelActivateApi(CatalogAdminApi):
    is_active = True

    @extend_schema(
        operation_id="admin_tokens_model_activate",
        summary="Make a model available for rating",
        request=None,
        responses={200: ModelDetailOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def post(self, request: Request, model_id: str) -> Response:
        model = services.model_set_active(model=_model_or_404(model_id), is_active=self.is_active, actor=request.user)
        return Response(_model_detail(model))


class ModelDeactivateApi(ModelActivateApi):
    is_active = False

    @extend_schema(
        operation_id="admin_tokens_model_deactivate",
        summary="Withdraw a model: events for it are refused, never rated at $0",
        request=None,
        responses={200: ModelDetailOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def post(self, request: Request, model_id: str) -> Response:
        return super().post(request, model_id)


# --- Staff writes: features, rates, plans ---------------------------------------------------------------------------


class FeatureCostSetApi(CatalogAdminApi):
    @extend_schema(
        operation_id="admin_tokens_feature_cost_set",
        summary="Add a cost version to a feature",
        description=(
            "Fields left out keep their value in the version in force at `effective_from`; `tier_multipliers`, "
            "when given, replaces the whole map. Multipliers must be > 0."
        ),
        request=FeatureCostInput,
        responses={200: FeatureCostOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def put(self, request: Request, feature_key: str) -> Response:
        feature = feature_by_key(feature_key=feature_key)
        if feature is None:
            raise NotFound(f"no feature {feature_key!r}")
        given = _parsed(FeatureCostInput, request.data)
        effective_from, reason = given.pop("effective_from", None), given.pop("reason")
        in_force = feature_cost_values_at(feature=feature, at=effective_from or timezone.now())
        try:
            version = services.feature_cost_set(
                feature=feature, **{**in_force, **given}, effective_from=effective_from, reason=reason,
                actor=request.user,
            )  # fmt: skip
        except CatalogValidationError as exc:
            raise _invalid(exc) from None
        return Response(FeatureCostOutput(version).data)

    @extend_schema(
        operation_id="admin_tokens_feature_update",
        summary="Rename or describe a feature, or withdraw it (is_active false: its events are refused)",
        request=FeatureUpdateInput,
        responses={200: FeatureOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def patch(self, request: Request, feature_key: str) -> Response:
        feature = feature_by_key(feature_key=feature_key)
        if feature is None:
            raise NotFound(f"no feature {feature_key!r}")
        try:
            services.feature_update(feature=feature, **_parsed(FeatureUpdateInput, request.data), actor=request.user)
        except CatalogValidationError as exc:
            raise _invalid(exc) from None
        return Response(FeatureOutput(feature).data)


class ExchangeRateSetApi(CatalogAdminApi):
    @extend_schema(
        operation_id="admin_tokens_exchange_rate_set",
        summary="Add a USD -> currency (or USD -> CREDITS) rate version",
        request=ExchangeRateInput,
        responses={201: ExchangeRateVersionOutput, **WRITE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        given = _parsed(ExchangeRateInput, request.data)
        try:
            version = services.exchange_rate_set(**given, actor=request.user)
        except CatalogValidationError as exc:
            raise _invalid(exc) from None
        return Response(ExchangeRateVersionOutput(version).data, status=status.HTTP_201_CREATED)


class PlanTermsSetApi(CatalogAdminApi):
    @extend_schema(
        operation_id="admin_tokens_plan_terms_set",
        summary="Add a terms version to a plan",
        description=(
            "Terms left out keep their value in the version in force at `effective_from`. Accounts pick up new "
            "terms when their next billing period opens."
        ),
        request=PlanTermsInput,
        responses={200: PlanTermsOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def put(self, request: Request, code: str) -> Response:
        plan = plan_by_code(code=code)
        if plan is None:
            raise NotFound(f"no plan {code!r}")
        given = _parsed(PlanTermsInput, request.data)
        effective_from, reason = given.pop("effective_from", None), given.pop("reason")
        in_force = plan_terms_values_at(plan=plan, at=effective_from or timezone.now())
        try:
            version = services.plan_terms_set(
                plan=plan, **{**in_force, **given}, effective_from=effective_from, reason=reason, actor=request.user
            )
        except CatalogValidationError as exc:
            raise _invalid(exc) from None
        return Response(PlanTermsOutput(version).data)

    @extend_schema(
        operation_id="admin_tokens_plan_update",
        summary="Rename a plan, show or hide it, or stop selling it (is_active false; its accounts keep it)",
        request=PlanUpdateInput,
        responses={200: PlanOutput, **WRITE_ERRORS, **NOT_FOUND},
    )
    def patch(self, request: Request, code: str) -> Response:
        plan = plan_by_code(code=code)
        if plan is None:
            raise NotFound(f"no plan {code!r}")
        try:
            services.plan_update(plan=plan, **_parsed(PlanUpdateInput, request.data), actor=request.user)
        except CatalogValidationError as exc:
            raise _invalid(exc) from None
        return Response(PlanOutput(plan).data)
