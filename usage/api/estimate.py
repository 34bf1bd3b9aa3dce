"""POST /api/usage/estimate: what a call would cost, from its text or its token counts."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import AccountApi
from billing.authentication import request_account
from billing.services.periods import period_current
from core.reused_serializers import InputReader
from pricing.selectors import catalog_snapshot, plan_terms_version
from usage.api.common import amount_field, request_body
from usage.api.inputs import PriceDimensionsSerializer
from usage.estimate import estimate_request, text_of
from usage.throttling import PlanRateThrottle


class UsageEstimateApi(AccountApi):
    throttle_classes = [PlanRateThrottle]

    class EstimateInputSerializer(PriceDimensionsSerializer):
        model = serializers.CharField(max_length=200)
        text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=2_000_000)
        messages = serializers.ListField(child=serializers.JSONField(), required=False, max_length=10_000)
        input_tokens = serializers.IntegerField(
            min_value=0, max_value=10**9, required=False, help_text="instead of text: the input tokens, counted"
        )
        max_output_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
        images = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=0)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "text" not in attrs and "messages" not in attrs and "input_tokens" not in attrs:
                raise serializers.ValidationError({"text": "send text, messages or input_tokens"})
            return super().validate(attrs)

    class EstimateOutputSerializer(serializers.Serializer):
        model_id = serializers.CharField()
        input_tokens = serializers.IntegerField()
        max_output_tokens = serializers.IntegerField()
        cost_usd = amount_field()
        charge_usd = amount_field()
        credits = amount_field()

    @extend_schema(
        request=EstimateInputSerializer, responses=EstimateOutputSerializer, summary="Tokens and cost of a request"
    )
    def post(self, request: Request) -> Response:
        values = _ESTIMATE_INPUT.read(request_body(request))
        now = timezone.now()
        period = period_current(account=request_account(request), as_of=now)
        estimate = estimate_request(
            model=values["model"], text=text_of(text=values.get("text"), messages=values.get("messages")),
            max_output_tokens=values["max_output_tokens"], snapshot=catalog_snapshot(), tier=period.plan.code,
            terms=plan_terms_version(period.terms), at=now, input_tokens=values.get("input_tokens"),
            images=values["images"], dimensions=PriceDimensionsSerializer.dimensions(values),
        )  # fmt: skip
        return Response(self.EstimateOutputSerializer(vars(estimate)).data)


_ESTIMATE_INPUT = InputReader(UsageEstimateApi.EstimateInputSerializer)
