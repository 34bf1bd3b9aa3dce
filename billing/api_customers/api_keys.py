"""The customer's own API keys: issue (shown once), list, revoke."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
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
from billing.errors import InvalidCustomer
from billing.models import ApiKey
from billing.selectors import customer_api_keys
from billing.services.api_keys import api_key_issue, api_key_revoke
from billing.services.customers import text_is_clean
from core.api_errors import ApiError


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
        values = parsed_input(self.ApiKeyInput, self.body(request))
        if not text_is_clean(values["name"]):
            raise InvalidCustomer("name", "printable text")

        def work() -> tuple[int, Any]:
            key, raw_key = api_key_issue(account=account, name=values["name"], ip=client_ip(request))
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
        return Response(api_key_out(api_key_revoke(key=key, ip=client_ip(request))))
