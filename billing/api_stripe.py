"""Account endpoints (API key) for paying by card: top-ups, auto-recharge, Stripe subscriptions.

Without Stripe keys they answer 503 {"error": "stripe_not_configured", "message": "Stripe is not configured"};
everything else in TokenLedger keeps working. The views that call Stripe run outside the request transaction, so
the local row whose id keys the Stripe request (the top-up, the audit entry) is committed before the call.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing import stripe_gateway as gateway
from billing.api import AccountApi
from billing.authentication import request_account
from billing.models import AutoRecharge, Subscription, TopUp
from billing.services.periods import plan_by_code
from billing.services.subscriptions_stripe import (
    SubscriptionRequest,
    subscription_stripe_cancel,
    subscription_stripe_subscribe,
)
from billing.services.topups import auto_recharge_configure, topup_create
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_status
from core.api_errors import ApiError


class StripeAccountApi(AccountApi):
    """Turns the gateway's errors into API errors: 503 when Stripe is off or unreachable, 402 for a declined
    card, 502 when Stripe refuses the request. A server key writes here (money moves) with the `customers` scope."""

    server_key_write_scope = "customers"

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, gateway.StripeNotConfigured):
            exc = ApiError("stripe_not_configured", NOT_CONFIGURED_MESSAGE, status_code=503)
        elif isinstance(exc, gateway.CardDeclined):
            exc = ApiError("card_declined", str(exc), status_code=402, fields={"decline_code": exc.decline_code})
        elif isinstance(exc, gateway.StripeTransientError):
            exc = ApiError("stripe_unavailable", f"Stripe did not answer, try again: {exc}", status_code=503)
        elif isinstance(exc, gateway.StripeGatewayError):
            exc = ApiError("stripe_refused", f"Stripe refused the request: {exc}", status_code=502)
        return super().handle_exception(exc)


class StripeStatusApi(AccountApi):
    class StripeStatusOutputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        webhooks_enabled = serializers.BooleanField()
        message = serializers.CharField(allow_blank=True)
        api_version = serializers.CharField()
        topup_packs_usd = serializers.ListField(child=serializers.CharField())
        topup_min_usd = serializers.CharField()
        topup_max_usd = serializers.CharField()

    @extend_schema(responses=StripeStatusOutputSerializer, summary="Whether card payments work, and the top-up packs")
    def get(self, request: Request) -> Response:
        return Response(self.StripeStatusOutputSerializer(stripe_status()).data)


class TopUpSerializer(serializers.ModelSerializer):
    topup_id = serializers.IntegerField(source="pk")

    class Meta:
        model = TopUp
        fields = ["topup_id", "source", "status", "amount_usd", "currency", "amount_cents", "credits", "rate",
                  "checkout_url", "failure_message", "created_at", "paid_at"]  # fmt: skip


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class TopUpCreateApi(StripeAccountApi):
    class TopUpCreateInputSerializer(serializers.Serializer):
        amount_usd = serializers.DecimalField(
            max_digits=12,
            decimal_places=2,
            help_text="one of the packs or any amount between the minimum and the maximum",
        )
        save_payment_method = serializers.BooleanField(default=False, help_text="keep the card for auto-recharge")

    class TopUpCreateOutputSerializer(serializers.Serializer):
        topup_id = serializers.IntegerField()
        amount_usd = serializers.DecimalField(max_digits=12, decimal_places=2)
        credits = serializers.DecimalField(max_digits=28, decimal_places=12)
        rate = serializers.DecimalField(max_digits=28, decimal_places=12)
        checkout_url = serializers.URLField()
        status = serializers.CharField()

    @extend_schema(
        request=TopUpCreateInputSerializer,
        responses={201: TopUpCreateOutputSerializer},
        summary="Start a credit top-up: a pending top-up at today's rate and its Stripe Checkout page",
    )
    def post(self, request: Request) -> Response:
        data = self.TopUpCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        started = topup_create(
            account=request_account(request), amount_usd=data.validated_data["amount_usd"],
            save_payment_method=data.validated_data["save_payment_method"],
        )  # fmt: skip
        topup = started.topup
        body = {"topup_id": topup.pk, "amount_usd": topup.amount_usd, "credits": topup.credits, "rate": topup.rate,
                "checkout_url": started.checkout_url, "status": topup.status}  # fmt: skip
        return Response(self.TopUpCreateOutputSerializer(body).data, status=status.HTTP_201_CREATED)


class TopUpDetailApi(AccountApi):
    @extend_schema(responses=TopUpSerializer, summary="One of the account's top-ups (404 for any other)")
    def get(self, request: Request, topup_id: int) -> Response:
        topup = get_object_or_404(TopUp.objects.filter(account=request_account(request)), pk=topup_id)
        return Response(TopUpSerializer(topup).data)


class AutoRechargeSerializer(serializers.ModelSerializer):
    class Meta:
        model = AutoRecharge
        fields = ["enabled", "threshold_credits", "amount_usd", "stripe_payment_method_id", "consecutive_failures",
                  "disabled_reason", "last_attempt_at"]  # fmt: skip


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class AutoRechargeApi(StripeAccountApi):
    class AutoRechargeInputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        threshold_credits = serializers.DecimalField(max_digits=28, decimal_places=12, min_value=0)
        amount_usd = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
        payment_method_id = serializers.CharField(required=False, allow_blank=True, max_length=255)

    @extend_schema(responses=AutoRechargeSerializer, summary="The account's auto-recharge")
    def get(self, request: Request) -> Response:
        row = AutoRecharge.objects.filter(account=request_account(request)).first() or AutoRecharge()
        return Response(AutoRechargeSerializer(row).data)

    @extend_schema(request=AutoRechargeInputSerializer, responses=AutoRechargeSerializer,
                   summary="Set auto-recharge: below a threshold of credits, charge an amount to the saved card")  # fmt: skip
    def put(self, request: Request) -> Response:
        data = self.AutoRechargeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values: dict[str, Any] = data.validated_data
        row = auto_recharge_configure(
            account=request_account(request), enabled=values["enabled"],
            threshold_credits=values["threshold_credits"], amount_usd=values["amount_usd"],
            payment_method_id=values.get("payment_method_id") or None,
        )  # fmt: skip
        return Response(AutoRechargeSerializer(row).data)


class SubscriptionStateSerializer(serializers.ModelSerializer):
    plan = serializers.CharField(source="plan.code")
    pending_plan = serializers.CharField(source="pending_plan.code", allow_null=True, default=None)

    class Meta:
        model = Subscription
        fields = ["plan", "pending_plan", "status", "interval", "current_period_start", "current_period_end",
                  "cancel_at_period_end", "past_due_since", "stripe_subscription_id", "stripe_price_id"]  # fmt: skip


class SubscriptionRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["checkout", "changed", "cancel_scheduled", "canceled"])
    checkout_url = serializers.CharField(allow_blank=True)
    stripe_subscription_id = serializers.CharField(allow_blank=True)
    stripe_status = serializers.CharField(allow_blank=True)


def _request_body(result: SubscriptionRequest) -> dict[str, Any]:
    return dict(SubscriptionRequestSerializer(result).data)


# the error body is filled in by core.openapi for every 4xx
SUBSCRIPTION_CONFLICT = OpenApiResponse(
    description="the subscription is not in a state that allows this (e.g. none is live)"
)


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class SubscriptionStripeApi(StripeAccountApi):
    class SubscribeInputSerializer(serializers.Serializer):
        plan = serializers.CharField(max_length=50)
        interval = serializers.ChoiceField(choices=["month", "year"], default="month")

    class CancelInputSerializer(serializers.Serializer):
        at_period_end = serializers.BooleanField(default=True)

    @extend_schema(responses=SubscriptionStateSerializer, summary="The account's subscription as TokenLedger has it")
    def get(self, request: Request) -> Response:
        subscription = get_object_or_404(Subscription.objects.select_related("plan", "pending_plan"),
                                         account=request_account(request))  # fmt: skip
        return Response(SubscriptionStateSerializer(subscription).data)

    @extend_schema(
        request=SubscribeInputSerializer,
        responses={200: SubscriptionRequestSerializer, 201: SubscriptionRequestSerializer, 409: SUBSCRIPTION_CONFLICT},
        summary="Subscribe to a plan (a Checkout page) or change the live subscription's plan (prorated)",
        description="The local plan changes when Stripe's customer.subscription event arrives.",
    )
    def post(self, request: Request) -> Response:
        data = self.SubscribeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = subscription_stripe_subscribe(
            account=request_account(request), plan=plan_by_code(data.validated_data["plan"]),
            interval=data.validated_data["interval"], ip=request.META.get("REMOTE_ADDR"),
        )  # fmt: skip
        code = status.HTTP_201_CREATED if result.action == "checkout" else status.HTTP_200_OK
        return Response(_request_body(result), status=code)

    @extend_schema(request=CancelInputSerializer, responses={200: SubscriptionRequestSerializer, 409: SUBSCRIPTION_CONFLICT},
                   summary="Cancel the Stripe subscription at the end of its period (default) or now")  # fmt: skip
    def delete(self, request: Request) -> Response:
        data = self.CancelInputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        result = subscription_stripe_cancel(
            account=request_account(request), at_period_end=data.validated_data["at_period_end"],
            ip=request.META.get("REMOTE_ADDR"),
        )  # fmt: skip
        return Response(_request_body(result))
