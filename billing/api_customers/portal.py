"""Portal sessions: a single-use link that signs the customer's owner into the dashboard for a few minutes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
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
from billing.authentication import ServerKeyPrincipal
from billing.services.portal import portal_session_create


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
        values = parsed_input(self.PortalSessionInput, self.body(request))
        principal = request.user
        assert isinstance(principal, ServerKeyPrincipal)

        def work() -> tuple[int, Any]:
            link = portal_session_create(
                account=account, return_url=values.get("return_url"), server_key=principal.server_key,
                ip=client_ip(request),
            )  # fmt: skip
            base = settings.PORTAL_BASE_URL.rstrip("/")
            url = f"{base}{link.path}" if base else request.build_absolute_uri(link.path)
            expires_at = serializers.DateTimeField().to_representation(link.session.expires_at)
            return 201, {"url": url, "expires_at": expires_at}

        return self.idempotent(request, work)
