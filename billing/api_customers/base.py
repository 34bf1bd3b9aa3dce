"""What every customers endpoint shares: the server-key base view with its idempotency, the path and header
parameters, and the error responses the schema documents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import AccountApi, ErrorOutput
from billing.authentication import ServerKeyOnly, ServerKeyPrincipal, ServerKeyScope
from billing.models import Account
from billing.selectors import customer_by_external_id
from billing.services.customers import external_id_check
from billing.services.idempotency import idempotency_run
from core.api_errors import ApiError

IDEMPOTENCY_HEADER = "Idempotency-Key"


def client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


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


def parsed_input(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
