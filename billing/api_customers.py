"""The customers API (a server key with the `customers` scope): customers by the reseller's own id, their plan,
credits, API keys, reads and portal sessions. Every POST takes an `Idempotency-Key` (required on grants)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import AccountApi, ErrorOutput, InvoiceListApi, UsageSummaryApi, WalletBalanceApi
from billing.authentication import ServerKeyOnly, ServerKeyPrincipal, ServerKeyScope
from billing.errors import InvalidCustomer
from billing.models import Account, ApiKey
from billing.selectors import (
    customer_api_keys,
    customer_by_external_id,
    customer_list,
    customers_with_details,
)
from billing.services.api_keys import api_key_issue, api_key_revoke
from billing.services.customers import (
    customer_credits_grant,
    customer_plan_change,
    customer_status_set,
    customer_upsert,
    external_id_check,
    grant_reference,
    text_is_clean,
)
from billing.services.idempotency import idempotency_run
from billing.services.portal import portal_session_create
from core.api_errors import ApiError

IDEMPOTENCY_HEADER = "Idempotency-Key"
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 200


def amount_text(value: Decimal) -> str:
    """A decimal string without trailing zeros ("0.15", "50000")."""
    text = format(value.normalize(), "f") if value else "0"
    return text


def _client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# --- what the API answers ------------------------------------------------------------------------------------------


def api_errors(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "invalid input (an external id that is not 1-128 printable characters too); `fields` names what and why",
        401: "no key, or an unknown or revoked key",
        403: "not a server key, or the key lacks the `customers` scope",
        404: "no customer with this external id (or no such key)",
        409: "idempotency_conflict: this Idempotency-Key was used with another body; portal_unavailable",
    }
    # every customer route has the external id in its path, which may be malformed: 400 is always possible
    return {code: OpenApiResponse(ErrorOutput, description=meaning[code]) for code in sorted({400, *codes})}


class CustomerBalanceOutput(serializers.Serializer):
    credits = serializers.CharField()
    held_credits = serializers.CharField()
    available_credits = serializers.CharField()
    low_balance = serializers.BooleanField()


class CustomerOutput(serializers.Serializer):
    external_id = serializers.CharField()
    account_id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField(allow_null=True)
    plan = serializers.CharField()
    pending_plan = serializers.CharField(allow_null=True, help_text="the plan from the next period, if changed")
    status = serializers.ChoiceField(choices=Account.Status.values)
    display_currency = serializers.CharField()
    low_balance_threshold = serializers.CharField()
    alert_webhook_url = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()
    balance = CustomerBalanceOutput()


CUSTOMER_EXAMPLE = {
    "external_id": "org_4711",
    "account_id": 42,
    "name": "Acme Ltd",
    "email": "owner@acme.example",
    "plan": "jive",
    "pending_plan": None,
    "status": "active",
    "display_currency": "USD",
    "low_balance_threshold": "1000",
    "alert_webhook_url": "",
    "metadata": {"crm_id": "A-17"},
    "created_at": "2026-12-07T00:20:00Z",
    "balance": {"credits": "50000", "held_credits": "0", "available_credits": "50000", "low_balance": False},
}


def customer_out(account: Account) -> dict[str, Any]:
    wallet = account.wallet
    subscription = account.subscription
    owners = getattr(account, "owner_memberships", None)
    if owners is None:
        owners = list(account.memberships.filter(role="owner").select_related("user").order_by("created_at", "pk"))
    available = wallet.balance - wallet.held
    threshold = account.low_balance_threshold
    return {
        "external_id": account.external_id,
        "account_id": account.pk,
        "name": account.name,
        "email": (owners[0].user.email or owners[0].user.username) if owners else None,
        "plan": subscription.plan.code,
        "pending_plan": subscription.pending_plan.code if subscription.pending_plan else None,
        "status": account.status,
        "display_currency": account.display_currency,
        "low_balance_threshold": amount_text(threshold),
        "alert_webhook_url": account.alert_webhook_url,
        "metadata": account.metadata,
        "created_at": serializers.DateTimeField().to_representation(account.created_at),
        "balance": {
            "credits": amount_text(wallet.balance),
            "held_credits": amount_text(wallet.held),
            "available_credits": amount_text(available),
            "low_balance": threshold > 0 and available < threshold,
        },
    }


def _customer_fresh(account: Account) -> dict[str, Any]:
    return customer_out(customers_with_details().get(pk=account.pk))


# --- the base view ---------------------------------------------------------------------------------------------------

EXTERNAL_ID_PARAMETER = OpenApiParameter(
    "external_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="your own id of the customer (1-128 chars)"
)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER,
    description="a retry with the same key answers the first result; the same key with another body is 409",
)  # fmt: skip
IDEMPOTENCY_REQUIRED = OpenApiParameter(
    IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
    description="required: a retry with the same key grants once and answers the first result",
)  # fmt: skip


class CustomersApi(AccountApi):
    """A server key with the `customers` scope; the customer comes from the path (404 when unknown)."""

    permission_classes = [IsAuthenticated, ServerKeyOnly, ServerKeyScope]
    server_key_scope = "customers"
    takes_customer_header = False  # the customer is in the path
    resolves_customer = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if self.resolves_customer and "external_id" in kwargs:
            principal = request.user
            assert isinstance(principal, ServerKeyPrincipal)
            principal.act_for(customer_by_external_id(external_id=external_id_check(kwargs["external_id"])))

    def customer(self, request: Request) -> Account:
        principal = request.user
        assert isinstance(principal, ServerKeyPrincipal)
        return principal.account

    def body(self, request: Request) -> dict[str, Any]:
        data = request.data
        if data in (None, "") or (hasattr(data, "keys") and not data):
            return {}
        if not isinstance(data, dict):
            raise ApiError("invalid", "The body must be a JSON object.")
        return dict(data)

    def idempotent(self, request: Request, work: Callable[[], tuple[int, Any]], *, required: bool = False) -> Response:
        """Answer `work()`, once per Idempotency-Key: a retry with the key gets the first answer again."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            if required:
                raise ApiError(
                    "idempotency_key_required",
                    f"Send an {IDEMPOTENCY_HEADER} header (e.g. a UUID made once per grant), so a retry grants once.",
                    fields={IDEMPOTENCY_HEADER: ["required"]},
                )
            status_code, body = work()
            return Response(body, status=status_code)
        principal = request.user
        assert isinstance(principal, ServerKeyPrincipal)
        answer = idempotency_run(
            owner=principal.owner, key=key, method=request.method or "POST", path=request.path,
            body=self.body(request), work=work,
        )  # fmt: skip
        response = Response(answer.body, status=answer.status_code)
        if answer.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


# --- customers -------------------------------------------------------------------------------------------------------


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
        return Response(_customer_fresh(account))

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
        account, created = customer_upsert(external_id=external_id, fields=self.body(request), ip=_client_ip(request))
        return Response(_customer_fresh(account), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


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
            customer_status_set(account=account, status=self.new_status, ip=_client_ip(request))
            return 200, _customer_fresh(account)

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
        values = _parsed(self.PlanChangeInput, self.body(request))

        def work() -> tuple[int, Any]:
            customer_plan_change(account=account, plan_code=values["plan"], when=values["when"], ip=_client_ip(request))
            return 200, _customer_fresh(account)

        return self.idempotent(request, work)


def _parsed(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class CustomerCreditsApi(CustomersApi):
    class GrantInput(serializers.Serializer):
        credits = serializers.DecimalField(max_digits=28, decimal_places=12, min_value=Decimal("0.000000000001"))
        reason = serializers.CharField(max_length=500)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    class GrantOutput(serializers.Serializer):
        balance = serializers.CharField(help_text="the customer's credits just after this grant")
        credits = serializers.CharField()
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
        values = _parsed(self.GrantInput, self.body(request))
        principal = request.user
        assert isinstance(principal, ServerKeyPrincipal)
        key = request.headers.get(IDEMPOTENCY_HEADER) or ""

        def work() -> tuple[int, Any]:
            posting = customer_credits_grant(
                account=account, credits=values["credits"], reason=values["reason"],
                expires_at=values.get("expires_at"), reference=grant_reference(owner=principal.owner, idempotency_key=key),
                ip=_client_ip(request),
            )  # fmt: skip
            expires_at = values.get("expires_at")
            return 201, {
                "balance": amount_text(posting.balance),
                "credits": amount_text(posting.entry.credits),
                "expires_at": serializers.DateTimeField().to_representation(expires_at) if expires_at else None,
            }

        return self.idempotent(request, work, required=True)


# --- the customer's own API keys -------------------------------------------------------------------------------------


class CustomerApiKeyOutput(serializers.Serializer):
    key_id = serializers.IntegerField()
    prefix = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class CustomerApiKeyCreatedOutput(CustomerApiKeyOutput):
    api_key = serializers.CharField(help_text="the whole key: shown only in this answer")


def api_key_out(key: ApiKey) -> dict[str, Any]:
    return dict(CustomerApiKeyOutput({
        "key_id": key.pk, "prefix": f"tl_{key.prefix}", "name": key.name, "created_at": key.created_at,
        "last_used_at": key.last_used_at, "revoked_at": key.revoked_at,
    }).data)  # fmt: skip


class CustomerApiKeysApi(CustomersApi):
    class ApiKeyInput(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    class ApiKeyListOutput(serializers.Serializer):
        results = CustomerApiKeyOutput(many=True)

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={200: ApiKeyListOutput, **api_errors(401, 403, 404)},
        summary="The customer's API keys (never the secrets), newest first",
    )
    def get(self, request: Request, external_id: str) -> Response:
        return Response({"results": [api_key_out(k) for k in customer_api_keys(account=self.customer(request))]})

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=ApiKeyInput,
        responses={201: CustomerApiKeyCreatedOutput, **api_errors(400, 401, 403, 404, 409)},
        examples=[
            OpenApiExample("issue", value={"name": "production"}, request_only=True),
            OpenApiExample(
                "issued",
                response_only=True,
                value={
                    "key_id": 7,
                    "prefix": "tl_3f9a1c2b4d5e",
                    "name": "production",
                    "created_at": "2026-12-07T00:20:00Z",
                    "last_used_at": None,
                    "revoked_at": None,
                    "api_key": "tl_3f9a1c2b4d5e_...",
                },
            ),
        ],
        summary="Issue an API key for the customer (the whole key is in this answer only)",
    )
    def post(self, request: Request, external_id: str) -> Response:
        account = self.customer(request)
        values = _parsed(self.ApiKeyInput, self.body(request))
        if not text_is_clean(values["name"]):
            raise InvalidCustomer("name", "printable text")

        def work() -> tuple[int, Any]:
            key, raw_key = api_key_issue(account=account, name=values["name"], ip=_client_ip(request))
            return 201, {**api_key_out(key), "api_key": raw_key}

        return self.idempotent(request, work)


class CustomerApiKeyRevokeApi(CustomersApi):
    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, OpenApiParameter("key_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: CustomerApiKeyOutput, **api_errors(401, 403, 404)},
        summary="Revoke one of the customer's keys (401 for it from now on); revoking twice answers the same",
    )
    def delete(self, request: Request, external_id: str, key_id: str) -> Response:
        # routed as text, so that any malformed id is this JSON 404 rather than the router's page
        key = None
        if key_id.isdigit() and len(key_id) <= 18:
            key = customer_api_keys(account=self.customer(request)).filter(pk=int(key_id)).first()
        if key is None:
            raise ApiError("not_found", f"the customer has no API key {key_id}", status_code=404)
        return Response(api_key_out(api_key_revoke(key=key, ip=_client_ip(request))))


# --- reads, as the account endpoints answer them ---------------------------------------------------------------------


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


# --- portal sessions -------------------------------------------------------------------------------------------------


class CustomerPortalSessionApi(CustomersApi):
    class PortalSessionInput(serializers.Serializer):
        return_url = serializers.CharField(required=False, allow_blank=True, max_length=2000,
                                           help_text="where the dashboard's back link goes (http(s))")  # fmt: skip

    class PortalSessionOutput(serializers.Serializer):
        url = serializers.CharField(help_text="single use; signs the customer's owner into the dashboard")
        expires_at = serializers.DateTimeField()

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=PortalSessionInput,
        responses={201: PortalSessionOutput, **api_errors(400, 401, 403, 404, 409)},
        examples=[
            OpenApiExample("with a way back", value={"return_url": "https://app.example/account"}, request_only=True),
            OpenApiExample(
                "link",
                response_only=True,
                value={
                    "url": "https://billing.example/portal/Zm9vYmFy...",
                    "expires_at": "2026-12-07T00:25:00Z",
                },
            ),
        ],
        summary="A one-time link (a few minutes) that signs the customer's owner into the dashboard",
    )
    def post(self, request: Request, external_id: str) -> Response:
        account = self.customer(request)
        values = _parsed(self.PortalSessionInput, self.body(request))
        principal = request.user
        assert isinstance(principal, ServerKeyPrincipal)

        def work() -> tuple[int, Any]:
            link = portal_session_create(
                account=account, return_url=values.get("return_url"), server_key=principal.server_key,
                ip=_client_ip(request),
            )  # fmt: skip
            base = settings.PORTAL_BASE_URL.rstrip("/")
            url = f"{base}{link.path}" if base else request.build_absolute_uri(link.path)
            expires_at = serializers.DateTimeField().to_representation(link.session.expires_at)
            return 201, {"url": url, "expires_at": expires_at}

        return self.idempotent(request, work)
