"""A local payment path for the demo: with DEBUG on and no Stripe configured, a clearly marked TEST checkout pays a
top-up without a card, so `make run` can show credits bought and spent.

It goes the way a Stripe payment goes, past the card: a pending top-up with the rate of its time
(topup_pending_create), then a `checkout.session.completed` event stored in the webhook inbox and processed there,
which credits the wallet through topup_checkout_completed. The ledger entry, the top-up's state and the inbox row are
those of a real payment. With DEBUG off, or with Stripe configured, it does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing.errors import BillingError
from billing.models import Account, StripeEvent, TopUp
from billing.services.audit import Actor, audit_record
from billing.services.topups import topup_pending_create
from billing.services.webhooks import stripe_event_process, stripe_event_store
from billing.stripe_conf import stripe_settings

SESSION_PREFIX = "cs_test_local_"
EVENT_PREFIX = "evt_test_local_"


class LocalCheckoutUnavailable(BillingError):
    """The local checkout exists only with DEBUG on and no Stripe configured."""

    code = "not_found"
    status_code = 404


def local_checkout_available() -> bool:
    return bool(settings.DEBUG) and not stripe_settings().enabled


def _completed_session(topup: TopUp) -> dict[str, Any]:
    """The Checkout Session Stripe would send for this top-up once paid."""
    return {
        "id": f"{SESSION_PREFIX}{topup.pk}",
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid",
        "status": "complete",
        "amount_total": topup.amount_cents,
        "currency": topup.currency.lower(),
        "client_reference_id": str(topup.pk),
        "metadata": {"topup_id": str(topup.pk), "account_id": str(topup.account_id)},
        "livemode": False,
    }


def local_topup_pay(*, account: Account, amount_usd: object, actor: Actor = None, now: datetime | None = None) -> TopUp:
    """Buy credits through the TEST checkout: the top-up is created, paid and credited through the webhook inbox.

    Raises LocalCheckoutUnavailable unless DEBUG is on and Stripe is off; refuses amounts as a real top-up does.
    """
    if not local_checkout_available():
        raise LocalCheckoutUnavailable("the TEST checkout exists only in a DEBUG installation without Stripe")
    now = now or timezone.now()
    topup = topup_pending_create(account=account, amount_usd=amount_usd, actor=actor, now=now)
    session = _completed_session(topup)
    TopUp.objects.filter(pk=topup.pk).update(stripe_checkout_session_id=session["id"])
    event = {
        "id": f"{EVENT_PREFIX}{topup.pk}",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(now.timestamp()),
        "livemode": False,
        "data": {"object": session},
    }
    stored, _ = stripe_event_store(event=event, now=now)
    processed = stripe_event_process(stripe_event_pk=stored.pk, now=now)
    if processed.status != StripeEvent.Status.SUCCEEDED:
        raise BillingError(f"the TEST payment of top-up #{topup.pk} failed: {processed.last_error}")
    audit_record(action="topup_test_checkout", account=account, object_type="TopUp", object_key=str(topup.pk),
                 actor=actor, after={"amount_usd": topup.amount_usd, "credits": topup.credits})  # fmt: skip
    topup.refresh_from_db()
    return topup
