"""Stripe customers: one per account, created on first need and kept in step with the account's name and email.

The account's email is its first owner's. Creation is keyed `customer:<account id>`, so two racing first uses (or
a retry after a crash before the id was saved) get the same Stripe customer. An update is keyed by the account and
a fingerprint of what is sent, so sending the same name and email again is a replay, never a second write.
"""

from __future__ import annotations

import hashlib

from django.db import transaction

from billing import stripe_gateway as gateway
from billing.models import Account, Membership


def account_billing_email(*, account: Account) -> str:
    """The email Stripe receipts and invoices go to: the account's first owner's, else its first admin's."""
    for role in (Membership.Role.OWNER, Membership.Role.ADMIN):
        email = (
            Membership.objects.filter(account=account, role=role, user__is_active=True)
            .exclude(user__email="")
            .order_by("pk")
            .values_list("user__email", flat=True)
            .first()
        )
        if email:
            return email
    return ""


def _fingerprint(*, name: str, email: str) -> str:
    return hashlib.sha256(f"{name}\n{email}".encode()).hexdigest()[:16]


def customer_ensure(*, account: Account) -> str:
    """The account's Stripe customer id, creating the customer on first need, then sending the current name and
    email (a replay when they did not change). Raises StripeNotConfigured when Stripe is off."""
    name = account.name
    email = account_billing_email(account=account)
    current = Account.objects.filter(pk=account.pk).values_list("stripe_customer_id", flat=True).first() or ""
    if not current:
        customer = gateway.customer_create(
            name=name, email=email, metadata={"account_id": str(account.pk)}, idempotency_key=f"customer:{account.pk}"
        )
        with transaction.atomic():
            locked = Account.objects.select_for_update().get(pk=account.pk)
            if not locked.stripe_customer_id:
                locked.stripe_customer_id = customer["id"]
                locked.save(update_fields=["stripe_customer_id"])
            current = locked.stripe_customer_id
        account.stripe_customer_id = current
        if customer["id"] == current and customer.get("name") == name and (customer.get("email") or "") == email:
            return current
    customer_sync(account=account, customer_id=current, name=name, email=email)
    account.stripe_customer_id = current
    return current


def customer_sync(*, account: Account, customer_id: str | None = None, name: str | None = None,
                  email: str | None = None) -> None:  # fmt: skip
    """Send the account's name and email to its Stripe customer (nothing when it has none yet)."""
    customer_id = customer_id or account.stripe_customer_id
    if not customer_id:
        return
    name = account.name if name is None else name
    email = account_billing_email(account=account) if email is None else email
    gateway.customer_update(
        customer_id=customer_id,
        name=name,
        email=email,
        idempotency_key=f"customer-update:{account.pk}:{_fingerprint(name=name, email=email)}",
    )


def account_for_customer(*, customer_id: str) -> Account | None:
    if not customer_id:
        return None
    return Account.objects.filter(stripe_customer_id=customer_id).order_by("pk").first()
