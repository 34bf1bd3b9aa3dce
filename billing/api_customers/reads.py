"""The account reads (balance, usage, invoices) for a customer named in the path, answered as the account
endpoints answer them."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import InvoiceListApi, UsageSummaryApi, WalletBalanceApi
from billing.api_customers.base import EXTERNAL_ID_PARAMETER, CustomersApi, api_errors


class CustomerBalanceApi(CustomersApi, WalletBalanceApi):
    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={200: WalletBalanceApi.BalanceOutputSerializer, **api_errors(401, 403, 404)},
        summary="The customer's balance, as GET /api/billing/balance answers it",
    )
    def get(self, request: Request, external_id: str) -> Response:  # type: ignore[override]
        return super().get(request)


class CustomerUsageApi(CustomersApi, UsageSummaryApi):
    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={200: UsageSummaryApi.UsageSummaryOutputSerializer, **api_errors(401, 403, 404)},
        summary="The customer's use of its plan this period, as GET /api/tokens/usage answers it",
    )
    def get(self, request: Request, external_id: str) -> Response:  # type: ignore[override]
        return super().get(request)


class CustomerInvoicesApi(CustomersApi, InvoiceListApi):
    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={200: OpenApiTypes.OBJECT, **api_errors(401, 403, 404)},
        summary="The customer's invoices, as GET /api/billing/invoices answers them",
    )
    def get(self, request: Request, external_id: str) -> Response:  # type: ignore[override]
        return super().get(request)
