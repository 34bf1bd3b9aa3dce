"""Credit grants to a customer, once per Idempotency-Key, optionally expiring."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api_customers.base import (
    EXTERNAL_ID_PARAMETER,
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_REQUIRED,
    CustomersApi,
    api_errors,
    client_ip,
    parsed_input,
)
from billing.authentication import ServerKeyPrincipal
from billing.services.customers import (
    customer_credits_grant,
    grant_reference,
)
from core.decimals import DecimalStringField, decimal_string


class CustomerCreditsApi(CustomersApi):
    class GrantInput(serializers.Serializer):
        credits = serializers.DecimalField(max_digits=28, decimal_places=12, min_value=Decimal("0.000000000001"))
        reason = serializers.CharField(max_length=500)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    class GrantOutput(serializers.Serializer):
        balance = DecimalStringField(
            max_digits=28, decimal_places=12, help_text="the customer's credits just after this grant"
        )
        credits = DecimalStringField(max_digits=28, decimal_places=12)
        expires_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, IDEMPOTENCY_REQUIRED],
        request=GrantInput,
        responses={201: GrantOutput, **api_errors(400, 401, 403, 404, 409)},
        examples=[
            OpenApiExample(
                "grant",
                value={"credits": "5000", "reason": "welcome bonus", "expires_at": "2027-01-31T00:00:00Z"},
                request_only=True,
            ),
            OpenApiExample(
                "granted",
                value={"balance": "55000", "credits": "5000", "expires_at": "2027-01-31T00:00:00Z"},
                response_only=True,
            ),
        ],
        summary="Grant credits (once per Idempotency-Key); with expires_at the unspent part expires then",
    )
    def post(self, request: Request, external_id: str) -> Response:
        account = self.customer(request)
        values = parsed_input(self.GrantInput, self.body(request))
        principal = request.user
        assert isinstance(principal, ServerKeyPrincipal)
        key = request.headers.get(IDEMPOTENCY_HEADER) or ""

        def work() -> tuple[int, Any]:
            posting = customer_credits_grant(
                account=account, credits=values["credits"], reason=values["reason"],
                expires_at=values.get("expires_at"), reference=grant_reference(owner=principal.owner, idempotency_key=key),
                ip=client_ip(request),
            )  # fmt: skip
            expires_at = values.get("expires_at")
            return 201, {
                "balance": decimal_string(posting.balance),
                "credits": decimal_string(posting.entry.credits),
                "expires_at": serializers.DateTimeField().to_representation(expires_at) if expires_at else None,
            }

        return self.idempotent(request, work, required=True)
