"""The customers API's usage reads (server key with the `customers` scope), as the account endpoints answer them."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api_customers.base import EXTERNAL_ID_PARAMETER, CustomersApi, api_errors
from usage.api import RANGE_PARAMETERS, UsageStatsApi


class CustomerStatsApi(CustomersApi, UsageStatsApi):
    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, *RANGE_PARAMETERS],
        responses={200: OpenApiTypes.OBJECT, **api_errors(400, 401, 403, 404)},
        summary="The customer's usage totals and breakdowns, as GET /api/usage/stats answers them",
    )
    def get(self, request: Request, external_id: str) -> Response:  # type: ignore[override]
        return super().get(request)
