"""A customer as the customers API answers it (CONTRACT.md): money as decimal strings without trailing zeros."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from billing.models import Account
from billing.selectors import customers_with_details
from core.decimals import DecimalStringField, decimal_string


class CustomerBalanceOutput(serializers.Serializer):
    credits = DecimalStringField(max_digits=28, decimal_places=12)
    held_credits = DecimalStringField(max_digits=28, decimal_places=12)
    available_credits = DecimalStringField(max_digits=28, decimal_places=12)
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
    low_balance_threshold = DecimalStringField(max_digits=28, decimal_places=12)
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
        "low_balance_threshold": decimal_string(threshold),
        "alert_webhook_url": account.alert_webhook_url,
        "metadata": account.metadata,
        "created_at": serializers.DateTimeField().to_representation(account.created_at),
        "balance": {
            "credits": decimal_string(wallet.balance),
            "held_credits": decimal_string(wallet.held),
            "available_credits": decimal_string(available),
            "low_balance": threshold > 0 and available < threshold,
        },
    }


def customer_fresh(account: Account) -> dict[str, Any]:
    return customer_out(customers_with_details().get(pk=account.pk))
