"""GET /api/usage/reservations/<request_id> and its release."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import AccountApi
from billing.authentication import request_account
from core.api_errors import ApiError
from usage.api.common import amount_field
from usage.models import Reservation
from usage.selectors import reservation_by_request
from usage.services.reservations import ReservationError, reservation_release


class ReservationOutputSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Reservation.Status.choices)
    model_id = serializers.CharField()
    held_credits = amount_field()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class ReservationDetailApi(AccountApi):
    @extend_schema(
        responses={200: ReservationOutputSerializer, 404: OpenApiTypes.OBJECT},
        summary="A reservation: active, settled (recorded), released or expired, with what it holds",
        examples=[
            OpenApiExample(
                "An active hold",
                response_only=True,
                value={
                    "request_id": "chat-42", "status": "active", "model_id": "qwen-3-32b", "held_credits": "1.5",
                    "created_at": "2026-12-07T10:00:00Z", "expires_at": "2026-12-07T10:10:00Z", "closed_at": None,
                },
            )
        ],
    )  # fmt: skip
    def get(self, request: Request, request_id: str) -> Response:
        reservation = reservation_by_request(account=request_account(request), request_id=request_id)
        if reservation is None:
            raise ApiError("not_found", f"No reservation for request {request_id!r}.", status_code=404)
        return Response(ReservationOutputSerializer(reservation).data)


class ReservationReleaseApi(AccountApi):
    class ReleaseOutputSerializer(serializers.Serializer):
        request_id = serializers.CharField()
        status = serializers.ChoiceField(choices=[Reservation.Status.RELEASED, Reservation.Status.EXPIRED])
        released_credits = amount_field()

    @extend_schema(
        request=None,
        responses={200: ReleaseOutputSerializer, 404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        summary="The call failed or was cancelled: free its hold now",
        description=(
            "Idempotent: releasing again answers the same. A reservation that expired answers status expired "
            "(its hold was freed by the expiry). A request already recorded answers 409 already_recorded; an "
            "unknown request_id 404 not_found."
        ),
        examples=[
            OpenApiExample(
                "Released",
                response_only=True,
                value={"request_id": "chat-42", "status": "released", "released_credits": "1.5"},
            )
        ],
    )
    def post(self, request: Request, request_id: str) -> Response:
        try:
            reservation = reservation_release(account=request_account(request), request_id=request_id)
        except ReservationError as exc:
            raise ApiError(exc.code, exc.message, status_code=exc.status_code) from None
        return Response(
            self.ReleaseOutputSerializer(
                {
                    "request_id": reservation.request_id,
                    "status": reservation.status,
                    "released_credits": reservation.held_credits,
                }
            ).data
        )
