"""Accounts, API keys, credit wallets and their ledger, subscriptions, billing periods and invoices.

One module per subject; every model is importable from `billing.models` as before.
"""

from billing.models.accounts import Account, Membership
from billing.models.audit import AuditEntry
from billing.models.idempotency import IdempotencyKey
from billing.models.invoices import Invoice, InvoiceOutbox, LateUsageAdjustment
from billing.models.keys import ApiKey, SecretKeyFields, ServerKey
from billing.models.portal import PortalSession
from billing.models.stripe_payments import AutoRecharge, OverageBilling, StripeEvent, TopUp
from billing.models.subscriptions import BillingPeriod, Subscription
from billing.models.wallets import CreditGrant, LedgerEntry, Wallet

__all__ = [
    "Account",
    "ApiKey",
    "AuditEntry",
    "AutoRecharge",
    "BillingPeriod",
    "CreditGrant",
    "IdempotencyKey",
    "Invoice",
    "InvoiceOutbox",
    "LateUsageAdjustment",
    "LedgerEntry",
    "Membership",
    "OverageBilling",
    "PortalSession",
    "SecretKeyFields",
    "ServerKey",
    "StripeEvent",
    "Subscription",
    "TopUp",
    "Wallet",
]
