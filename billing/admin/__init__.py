"""The billing part of the TokenLedger console.

Every write goes through billing.services, with the signed-in admin as actor and the request's IP, so the console
obeys the same rules as the API and the commands and leaves the same audit trail. The ledger, credit grants and the
audit log are read-only; accounts, wallets, subscriptions, periods and invoices are viewed here and changed only
through the actions and pages below.
"""

from billing.admin import (
    accounts,
    api_keys,
    audit,
    invoices,
    outbox,
    periods,
    server_keys,
    stripe_events,
    subscriptions,
    wallets,
)

__all__ = [
    "accounts",
    "api_keys",
    "audit",
    "invoices",
    "outbox",
    "periods",
    "server_keys",
    "stripe_events",
    "subscriptions",
    "wallets",
]
