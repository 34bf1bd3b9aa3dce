"""Customers by the reseller's own id: create or update, read, list a page at a time, suspend, reactivate, change
the plan."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api_customers.base import (
    EXTERNAL_ID_PARAMETER,
    IDEMPOTENCY_PARAMETER,
    CustomersApi,
    api_errors,
    client_ip,
    parsed_input,
)
from billing.api_customers.output import CUSTOMER_EXAMPLE, CustomerOutput, customer_fresh, customer_out
from billing.models import Account
from billing.selectors import (
    customer_by_external_id,
    customer_list,
)
from billing.services.customers import (
    customer_plan_change,
    customer_status_set,
    customer_upsert,
    external_id_check,
    text_is_clean,
)
from core.api_errors import ApiError

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 200


class CustomerInputSerializer(serializers.Serializer):
    """The fields of a PUT (documentation: the service checks them; absent fields stay as they are)."""

    name = serializers.CharField(required=False, max_length=200, help_text="required to create")
    email = serializers.EmailField(required=False, allow_null=True, help_text="the owner, who signs in")
    plan = serializers.CharField(required=False, help_text=f"a plan code (default {settings.CUSTOMERS_DEFAULT_PLAN})")
    display_currency = serializers.CharField(required=False)
    low_balance_threshold = serializers.DecimalField(max_digits=28, decimal_places=12, required=False, min_value=0)
    alert_webhook_url = serializers.URLField(required=False, allow_blank=True)
    metadata = serializers.DictField(required=False, help_text="an object, at most 4 KB as JSON")


class CustomerListApi(CustomersApi):
    class CustomerPageOutput(serializers.Serializer):
        results = CustomerOutput(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="next_cursor of the previous page"),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description=f"1-{LIST_LIMIT_MAX} (default {LIST_LIMIT_DEFAULT})"
            ),
            OpenApiParameter("plan", OpenApiTypes.STR, description="a plan code"),
            OpenApiParameter("status", OpenApiTypes.STR, enum=Account.Status.values),
            OpenApiParameter("created_from", OpenApiTypes.DATETIME, description="created at or after"),
            OpenApiParameter("created_to", OpenApiTypes.DATETIME, description="created before"),
        ],
        responses={200: CustomerPageOutput, **api_errors(400, 401, 403)},
        examples=[
            OpenApiExample("a page", value={"results": [CUSTOMER_EXAMPLE], "next_cursor": "NDI"}, response_only=True)
        ],
        summary="Customers, oldest first, a page at a time",
        operation_id="customers_list",
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        after_id = _cursor_read(query.get("cursor"))
        limit = _int_param(query.get("limit"), "limit", LIST_LIMIT_DEFAULT, 1, LIST_LIMIT_MAX)
        status_filter = query.get("status") or None
        if status_filter is not None and status_filter not in Account.Status.values:
            raise ApiError("invalid", f"status must be one of {', '.join(Account.Status.values)}",
                           fields={"status": [f"one of {', '.join(Account.Status.values)}"]})  # fmt: skip
        plan = query.get("plan") or None
        if plan is not None and not text_is_clean(plan):
            raise ApiError("invalid", "plan: a plan code", fields={"plan": ["a plan code"]})
        customers = customer_list(
            plan=plan, status=status_filter, created_from=_time_param(query.get("created_from"), "created_from"),
            created_to=_time_param(query.get("created_to"), "created_to"), after_id=after_id, limit=limit + 1,
        )  # fmt: skip
        page, more = customers[:limit], len(customers) > limit
        next_cursor = _cursor_make(page[-1].pk) if more and page else None
        return Response({"results": [customer_out(c) for c in page], "next_cursor": next_cursor})


def _cursor_make(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def _cursor_read(value: str | None) -> int | None:
    if not value:
        return None
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        if not text.isdigit() or len(text) > 18:
            raise ValueError(text)
        return int(text)
    except ValueError:
        raise ApiError(
            "invalid", "cursor: use the next_cursor of a page", fields={"cursor": ["unknown cursor"]}
        ) from None


def _int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ApiError(
            "invalid", f"{name} must be a whole number from {low} to {high}", fields={name: [f"{low}-{high}"]}
        )
    return int(value)


def _time_param(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None or timezone.is_naive(moment):
        raise ApiError("invalid", f"{name} must be an ISO 8601 time with a zone, e.g. 2026-12-01T00:00:00Z",
                       fields={name: ["ISO 8601 with a zone"]})  # fmt: skip
    return moment


class CustomerDetailApi(CustomersApi):
    resolves_customer = False  # PUT may create it; GET looks it up itself

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={200: CustomerOutput, **api_errors(401, 403, 404)},
        examples=[OpenApiExample("a customer", value=CUSTOMER_EXAMPLE, response_only=True)],
        summary="One customer, by your id",
    )
    def get(self, request: Request, external_id: str) -> Response:
        account = customer_by_external_id(external_id=external_id_check(external_id))
        return Response(customer_fresh(account))

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER],
        request=CustomerInputSerializer,
        responses={200: CustomerOutput, 201: CustomerOutput, **api_errors(400, 401, 403)},
        examples=[
            OpenApiExample(
                "create",
                request_only=True,
                value={
                    "name": "Acme Ltd",
                    "email": "owner@acme.example",
                    "plan": "jive",
                    "metadata": {"crm_id": "A-17"},
                },
            ),
            OpenApiExample("the customer", value=CUSTOMER_EXAMPLE, response_only=True),
        ],
        summary="Create or update a customer by your id (201 created, 200 updated; the same body twice changes nothing)",
    )
    def put(self, request: Request, external_id: str) -> Response:
        account, created = customer_upsert(external_id=external_id, fields=self.body(request), ip=client_ip(request))
        return Response(customer_fresh(account), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CustomerSuspendApi(CustomersApi):
    new_status = Account.Status.SUSPENDED

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=None,
        responses={200: CustomerOutput, **api_errors(400, 401, 403, 404, 409)},
        summary="Suspend the customer (audited): it reads its balance but cannot spend",
    )
    def post(self, request: Request, external_id: str) -> Response:
        account = self.customer(request)

        def work() -> tuple[int, Any]:
            customer_status_set(account=account, status=self.new_status, ip=client_ip(request))
            return 200, customer_fresh(account)

        return self.idempotent(request, work)


class CustomerReactivateApi(CustomerSuspendApi):
    new_status = Account.Status.ACTIVE

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=None,
        responses={200: CustomerOutput, **api_errors(400, 401, 403, 404, 409)},
        summary="Reactivate a suspended customer (audited)",
    )
    def post(self, request: Request, external_id: str) -> Response:
        return super().post(request, external_id)


class CustomerPlanApi(CustomersApi):
    class PlanChangeInput(serializers.Serializer):
        plan = serializers.CharField(max_length=50)
        when = serializers.ChoiceField(choices=["now", "next_period"], default="next_period")

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=PlanChangeInput,
        responses={200: CustomerOutput, **api_errors(400, 401, 403, 404, 409)},
        examples=[OpenApiExample("upgrade now", value={"plan": "jigga", "when": "now"}, request_only=True)],
        summary='Change the plan "now" (the open period takes its terms) or from the "next_period"',
    )
    def post(self, request: Request, external_id: str) -> Response:
        account = self.customer(request)
        values = parsed_input(self.PlanChangeInput, self.body(request))

        def work() -> tuple[int, Any]:
            customer_plan_change(account=account, plan_code=values["plan"], when=values["when"], ip=client_ip(request))
            return 200, customer_fresh(account)

        return self.idempotent(request, work)
