"""POST /api/usage/authorize: may this call run now? Its worst case is held until it is recorded."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import OwnTransactionAccountApi
from billing.authentication import request_account_ref
from core.api_errors import ApiError
from core.reused_serializers import InputReader
from pricing.rating import FeatureUse
from pricing.selectors import catalog_snapshot
from usage.api.common import amount_field, amount_out, request_body, time_out
from usage.api.inputs import FeatureUseField, PriceDimensionsSerializer, features_distinct
from usage.estimate import max_output_tokens_for
from usage.services.authorization import AuthorizeRequest, reservation_create
from usage.services.reservations import ReservationError
from usage.throttling import PlanRateThrottle


class UsageAuthorizeApi(OwnTransactionAccountApi):
    throttle_classes = [PlanRateThrottle]

    class AuthorizeInputSerializer(PriceDimensionsSerializer):
        request_id = serializers.CharField(min_length=1, max_length=128, trim_whitespace=False)
        model = serializers.CharField(max_length=200)
        input_tokens = serializers.IntegerField(min_value=0, max_value=10**9)
        max_output_tokens = serializers.IntegerField(
            min_value=0, max_value=10**9, required=False, allow_null=True, default=None,
            help_text="the most output the call may produce; left out, the model's max_output_tokens",
        )  # fmt: skip
        operation_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        images = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=0)
        features = serializers.ListField(child=FeatureUseField(), required=False, default=list, max_length=50)

        def validate_request_id(self, value: str) -> str:
            if not value.isprintable():
                raise serializers.ValidationError("1 to 128 printable characters")
            return value

        def validate_features(self, value: list[FeatureUse]) -> list[FeatureUse]:
            return features_distinct(value)

    class AuthorizeAlternativeSerializer(serializers.Serializer):
        model_id = serializers.CharField()
        credits = amount_field()
        charge_usd = amount_field()

    class AuthorizeOutputSerializer(serializers.Serializer):
        allowed = serializers.BooleanField()
        reservation_id = serializers.IntegerField(required=False)
        held_credits = amount_field(required=False)
        expires_at = serializers.DateTimeField(required=False)
        remaining = amount_field(required=False, allow_null=True)
        reason = serializers.CharField(required=False)
        message = serializers.CharField(required=False)
        alternatives = serializers.ListField(child=serializers.DictField(), required=False)

    @extend_schema(
        request=AuthorizeInputSerializer,
        responses={200: AuthorizeOutputSerializer, 400: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        summary="May this call run now? If so, its worst-case cost is held until it is recorded",
        description=(
            "A request_id is used once. Asking again with the same parameters answers the first decision; with "
            "other parameters (model, token counts, operation, features, images) answers 409 idempotency_conflict; "
            "a request already recorded answers 409 already_recorded."
        ),
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        values = _AUTHORIZE_INPUT.read(request_body(request))
        snapshot = catalog_snapshot()
        try:
            decision = reservation_create(
                account=request_account_ref(request), snapshot=snapshot,
                request=AuthorizeRequest(
                    request_id=values["request_id"], model=values["model"], input_tokens=values["input_tokens"],
                    max_output_tokens=max_output_tokens_for(
                        model=values["model"], asked=values["max_output_tokens"], snapshot=snapshot
                    ),
                    operation_type=values["operation_type"], features=tuple(values["features"]),
                    images=values["images"], dimensions=PriceDimensionsSerializer.dimensions(values),
                ),
            )  # fmt: skip
        except ReservationError as exc:
            raise ApiError(exc.code, exc.message, status_code=exc.status_code) from None
        if not decision.allowed:
            body: dict[str, Any] = {"allowed": False, "reason": decision.reason, "message": decision.message}
            if decision.alternatives:
                body["alternatives"] = [
                    {"model_id": a.model_id, "credits": amount_out(a.credits), "charge_usd": amount_out(a.charge_usd)}
                    for a in decision.alternatives
                ]
            return Response(body)
        reservation = decision.reservation
        assert reservation is not None
        # written as AuthorizeOutputSerializer describes it, without a serializer on the hot path
        return Response(
            {
                "allowed": True,
                "reservation_id": reservation.pk,
                "held_credits": amount_out(reservation.held_credits),
                "expires_at": time_out(reservation.expires_at),
                "remaining": amount_out(decision.remaining),
            }
        )


_AUTHORIZE_INPUT = InputReader(UsageAuthorizeApi.AuthorizeInputSerializer)
