"""Account endpoints (API key): balance, invoices, usage of the current period."""

from __future__ import annotations

from contextvars import Token
from dataclasses import asdict
from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.decorators import method_decorator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.authentication import (
    CUSTOMER_HEADER,
    ApiKeyAuthentication,
    ServerKeyPrincipal,
    ServerKeyScope,
    request_account,
    request_account_ref,
)
from billing.models import Invoice
from billing.selectors import account_invoices, period_usage_summary, wallet_balance_summary
from billing.services.audit import audit_via_begin, audit_via_end
from billing.services.periods import period_current
from core.decimals import DecimalStringField, DecimalStringModelSerializer, decimal_string
from core.reused_serializers import OutputWriter
from pricing.money import Money

ErrorOutput = inline_serializer(
    name="ApiError",
    fields={
        "error": serializers.CharField(help_text="a stable code: invalid, unknown_customer, idempotency_conflict, ..."),
        "message": serializers.CharField(),
        "fields": serializers.DictField(help_text="field name -> messages"),
    },
)
ACCOUNT_ERRORS = {
    "401": "no key, or an unknown or revoked key",
    "403": "a server key without the scope this endpoint needs",
}
CUSTOMER_HEADER_ERRORS = {
    "400": "invalid input; with a server key also `customer_required` (no TokenLedger-Customer header)",
    "404": "with a server key: `unknown_customer` (no customer with that external id)",
}
CUSTOMER_HEADER_PARAMETER = OpenApiParameter(
    CUSTOMER_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="with a server key (tls_...): the external id of the customer to act for; ignored for account keys",
)  # fmt: skip


class AccountAutoSchema(AutoSchema):
    """Every account endpoint documents the customer header of server keys and the errors any key may meet."""

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if getattr(self.view, "takes_customer_header", True):
            parameters.append(CUSTOMER_HEADER_PARAMETER)
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = dict(ACCOUNT_ERRORS)
        if getattr(self.view, "takes_customer_header", True):
            errors.update(CUSTOMER_HEADER_ERRORS)
        for code, description in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorOutput, description=description), code, direction=direction
                )
        return responses


class AccountApi(APIView):
    """Base for endpoints an account's backend calls with its API key, or a server key naming the customer.

    A server key needs `server_key_scope` (when set), else `read` to read and `server_key_write_scope` to write;
    what it changes is audited as done by that key.
    """

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated, ServerKeyScope]
    schema = AccountAutoSchema()
    takes_customer_header = True
    server_key_scope: str | None = None
    server_key_write_scope = "usage"
    _audit_token: Token[str] | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if isinstance(request.user, ServerKeyPrincipal):
            self._audit_token = audit_via_begin(request.user.audit_label)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if self._audit_token is not None:
            audit_via_end(self._audit_token)
            self._audit_token = None
        return super().finalize_response(request, response, *args, **kwargs)


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class OwnTransactionAccountApi(AccountApi):
    """An account endpoint on the hot path: no transaction around the request (ATOMIC_REQUESTS is off for it); its
    service opens the one transaction it needs, so the request pays no savepoint and a read no BEGIN/COMMIT."""

    def handle_exception(self, exc: Exception) -> Any:
        # DRF marks the enclosing transaction for rollback on an error answer; this view opened none, so an
        # enclosing one (a caller's, a test's) is not this request's to roll back
        connection = transaction.get_connection()
        marked = connection.needs_rollback
        try:
            return super().handle_exception(exc)
        finally:
            if connection.in_atomic_block and not marked:
                transaction.set_rollback(False)


class WalletBalanceApi(OwnTransactionAccountApi):
    class BalanceOutputSerializer(serializers.Serializer):
        credits = DecimalStringField(max_digits=28, decimal_places=12)
        held_credits = DecimalStringField(max_digits=28, decimal_places=12)
        available_credits = DecimalStringField(max_digits=28, decimal_places=12)
        usd_equivalent = DecimalStringField(max_digits=28, decimal_places=2)
        local_currency = serializers.CharField()
        local_amount = DecimalStringField(max_digits=28, decimal_places=2)
        credits_per_usd = DecimalStringField(max_digits=28, decimal_places=12)
        low_balance = serializers.BooleanField()

    @extend_schema(responses=BalanceOutputSerializer, summary="The account's credit balance")
    def get(self, request: Request) -> Response:
        account = request_account_ref(request)
        summary = wallet_balance_summary(account=account, as_of=timezone.now())
        body = {
            "credits": summary.credits,
            "held_credits": summary.held_credits,
            "available_credits": summary.available_credits,
            "usd_equivalent": summary.usd_equivalent.amount,
            "local_currency": summary.local_amount.currency,
            "local_amount": summary.local_amount.amount,
            "credits_per_usd": summary.credits_rate,
            "low_balance": summary.low_balance,
        }
        return Response(_BALANCE_OUTPUT.write(body))


_BALANCE_OUTPUT = OutputWriter(WalletBalanceApi.BalanceOutputSerializer)


class InvoiceSerializer(DecimalStringModelSerializer):
    period_start = serializers.DateTimeField(source="period.start")
    period_end = serializers.DateTimeField(source="period.end")
    amount = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id", "period_start", "period_end", "plan_code", "unit", "units", "included_units", "overage_units",
            "input_tokens", "output_tokens", "messages", "api_cost_usd", "base_charge", "overage", "cap_applied",
            "late_usage", "total", "currency", "amount_cents", "amount", "status", "stripe_invoice_id", "hosted_invoice_url",
            "paid_at", "created_at",
        ]  # fmt: skip

    @extend_schema_field(DecimalStringField(max_digits=28, decimal_places=2))
    def get_amount(self, invoice: Invoice) -> str:
        """The invoice total in the currency's unit, from the minor units billed."""
        return decimal_string(Money.from_minor_units(invoice.amount_cents, invoice.currency).amount)


class InvoiceListApi(AccountApi):
    class InvoiceListOutputSerializer(serializers.Serializer):
        results = InvoiceSerializer(many=True)

    @extend_schema(
        operation_id="billing_invoices_list",
        responses=InvoiceListOutputSerializer,
        summary="The account's invoices, newest period first: {results: [...]}",
    )
    def get(self, request: Request) -> Response:
        invoices = account_invoices(account=request_account(request))
        return Response({"results": InvoiceSerializer(invoices, many=True).data})


class InvoiceDetailApi(AccountApi):
    @extend_schema(responses=InvoiceSerializer, summary="One of the account's invoices (404 for any other)")
    def get(self, request: Request, invoice_id: int) -> Response:
        invoice = get_object_or_404(account_invoices(account=request_account(request)), pk=invoice_id)
        return Response(InvoiceSerializer(invoice).data)


class UsageSummaryApi(AccountApi):
    class UsageSummaryOutputSerializer(serializers.Serializer):
        plan = serializers.CharField()
        unit = serializers.CharField()
        limit = DecimalStringField(max_digits=28, decimal_places=12, allow_null=True)
        used = DecimalStringField(max_digits=28, decimal_places=12)
        remaining = DecimalStringField(max_digits=28, decimal_places=12, allow_null=True)
        usage_percentage = DecimalStringField(max_digits=12, decimal_places=2, allow_null=True)
        status = serializers.ChoiceField(choices=["ok", "moderate", "high", "exceeded"])
        period_start = serializers.DateTimeField()
        period_end = serializers.DateTimeField()

    @extend_schema(
        responses=UsageSummaryOutputSerializer, summary="The account's usage of its plan in the current period"
    )
    def get(self, request: Request) -> Response:
        period = period_current(account=request_account(request), as_of=timezone.now())
        summary = period_usage_summary(period=period)
        return Response(self.UsageSummaryOutputSerializer(asdict(summary)).data)
