"""Plan subscriptions in Stripe: subscribe (Checkout), change price, cancel; and the local subscription kept in
step from Stripe's `customer.subscription.*` events.

Stripe is the source of truth for a Stripe-billed subscription: the API asks Stripe for a change and answers at
once; the local `Subscription` (plan from the price id, status, period bounds, cancel flag) changes when the event
arrives. Events can arrive in any order; an event older than one already applied to the same subscription is
skipped, so `updated` before `created` still ends in the newest state.

Requests that change something carry a key built from the audit entry recorded for the request
(`subscription-change:<audit id>`), so a network retry replays the same request while a later, separate request
(A -> B -> A) is a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.errors import BillingError
from billing.models import Account, StripeEvent, Subscription
from billing.services.audit import Actor, audit_record
from billing.services.periods import plan_terms_at, subscription_change_plan
from billing.services.stripe_customers import account_for_customer, customer_ensure
from billing.services.topups import StripeDataError
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_settings
from pricing.models import Plan


class NoStripePrice(BillingError):
    code = "no_stripe_price"
    status_code = 400


class SubscriptionStateError(BillingError):
    code = "subscription_state"
    status_code = 409


# Stripe's subscription statuses -> the local ones. `incomplete` (first payment not made yet) changes nothing.
STATUS_FROM_STRIPE: dict[str, str] = {
    "active": Subscription.Status.ACTIVE,
    "trialing": Subscription.Status.TRIALING,
    "past_due": Subscription.Status.PAST_DUE,
    "unpaid": Subscription.Status.PAST_DUE,
    "paused": Subscription.Status.PAST_DUE,
    "canceled": Subscription.Status.CANCELED,
    "incomplete_expired": Subscription.Status.CANCELED,
}
LIVE_STRIPE_STATUSES = {"active", "trialing", "past_due", "unpaid", "paused"}


def plan_price_id(*, plan: Plan, interval: str) -> str:
    price = plan.stripe_price_yearly if interval == "year" else plan.stripe_price_monthly
    if interval not in ("month", "year"):
        raise NoStripePrice(f"interval must be month or year, got {interval!r}")
    if not price:
        raise NoStripePrice(f"plan {plan.code!r} has no Stripe price for a {interval}ly subscription")
    return price


def plan_for_price(*, price_id: str) -> tuple[Plan, str] | None:
    """The plan whose monthly or yearly Stripe price is `price_id`, with that interval."""
    plan = (
        Plan.objects.filter(Q(stripe_price_monthly=price_id) | Q(stripe_price_yearly=price_id)).order_by("pk").first()
    )
    if plan is None:
        return None
    return plan, "year" if plan.stripe_price_yearly == price_id else "month"


def _live(subscription: Subscription) -> bool:
    return bool(subscription.stripe_subscription_id) and subscription.status != Subscription.Status.CANCELED


def _require_stripe() -> None:
    if not stripe_settings().enabled:
        raise gateway.StripeNotConfigured(NOT_CONFIGURED_MESSAGE)


def _request_key(*, kind: str, account: Account, actor: Actor, ip: str | None, after: dict[str, Any]) -> str:
    """Record the request in the audit log (committed at once: call outside a transaction) and key it by that."""
    entry = audit_record(action=f"stripe_subscription_{kind}", account=account, object_type="Subscription",
                         object_key=str(account.pk), actor=actor, ip=ip, after=after)  # fmt: skip
    return f"subscription-{kind}:{entry.pk}"


@dataclass(frozen=True)
class SubscriptionRequest:
    action: str  # checkout | changed | cancel_scheduled | canceled | resumed
    checkout_url: str = ""
    stripe_subscription_id: str = ""
    stripe_status: str = ""


def subscription_stripe_subscribe(
    *, account: Account, plan: Plan, interval: str = "month", actor: Actor = None, ip: str | None = None
) -> SubscriptionRequest:
    """Subscribe to `plan`: a Checkout page when the account has no live Stripe subscription, else a prorated
    change of the subscription's price. The local plan follows when Stripe's event arrives."""
    _require_stripe()
    price_id = plan_price_id(plan=plan, interval=interval)
    plan_terms_at(plan=plan, at=timezone.now())  # a plan without terms cannot be subscribed to
    local = Subscription.objects.get(account=account)
    if _live(local):
        return subscription_stripe_change(account=account, plan=plan, interval=interval, actor=actor, ip=ip)
    conf = stripe_settings()
    customer_id = customer_ensure(account=account)
    key = _request_key(
        kind="checkout", account=account, actor=actor, ip=ip, after={"plan": plan.code, "price": price_id}
    )
    session = gateway.checkout_session_create_subscription(
        customer_id=customer_id, price_id=price_id,
        metadata={"account_id": str(account.pk), "plan": plan.code},
        success_url=conf.checkout_success_url, cancel_url=conf.checkout_cancel_url, idempotency_key=key,
    )  # fmt: skip
    return SubscriptionRequest(action="checkout", checkout_url=session.get("url") or "")


def _subscription_item_id(subscription: dict[str, Any]) -> str:
    items = (subscription.get("items") or {}).get("data") or []
    if len(items) != 1:
        raise SubscriptionStateError(f"subscription {subscription.get('id')} has {len(items)} items, expected 1")
    return items[0]["id"]


def subscription_stripe_change(
    *, account: Account, plan: Plan, interval: str = "month", actor: Actor = None, ip: str | None = None
) -> SubscriptionRequest:
    """Move the live Stripe subscription to `plan`'s price now, prorated."""
    _require_stripe()
    price_id = plan_price_id(plan=plan, interval=interval)
    local = Subscription.objects.get(account=account)
    if not _live(local):
        raise SubscriptionStateError("the account has no live Stripe subscription: subscribe first")
    remote = gateway.subscription_retrieve(subscription_id=local.stripe_subscription_id)
    key = _request_key(kind="change", account=account, actor=actor, ip=ip,
                       after={"plan": plan.code, "price": price_id, "subscription": local.stripe_subscription_id})  # fmt: skip
    updated = gateway.subscription_change_price(
        subscription_id=local.stripe_subscription_id, item_id=_subscription_item_id(remote), price_id=price_id,
        idempotency_key=key,
    )  # fmt: skip
    return SubscriptionRequest("changed", stripe_subscription_id=updated["id"], stripe_status=updated.get("status", ""))


def subscription_stripe_cancel(
    *, account: Account, at_period_end: bool = True, actor: Actor = None, ip: str | None = None
) -> SubscriptionRequest:
    """Cancel the live Stripe subscription at the end of its period (default) or now."""
    _require_stripe()
    local = Subscription.objects.get(account=account)
    if not _live(local):
        raise SubscriptionStateError("the account has no live Stripe subscription")
    if at_period_end:
        key = _request_key(kind="cancel", account=account, actor=actor, ip=ip,
                           after={"subscription": local.stripe_subscription_id, "at_period_end": True})  # fmt: skip
        result = gateway.subscription_cancel_at_period_end(
            subscription_id=local.stripe_subscription_id, cancel=True, idempotency_key=key
        )
        return SubscriptionRequest("cancel_scheduled", stripe_subscription_id=result["id"],
                                   stripe_status=result.get("status", ""))  # fmt: skip
    audit_record(action="stripe_subscription_cancel", account=account, object_type="Subscription",
                 object_key=str(account.pk), actor=actor, ip=ip,
                 after={"subscription": local.stripe_subscription_id, "at_period_end": False})  # fmt: skip
    result = gateway.subscription_cancel_now(subscription_id=local.stripe_subscription_id)
    return SubscriptionRequest("canceled", stripe_subscription_id=result["id"], stripe_status=result.get("status", ""))


# --- keeping the local subscription in step ----------------------------------------------------------------------


def _timestamp(value: Any) -> datetime | None:
    return (
        datetime.fromtimestamp(int(value), tz=UTC) if isinstance(value, int) and not isinstance(value, bool) else None
    )


def subscription_price_and_period(subscription: dict[str, Any]) -> tuple[str, datetime | None, datetime | None]:
    """The price id and period bounds, from the subscription's item (current API versions) or from the
    subscription itself and its `plan` (API versions before 2025-03-31, and the local Stripe test server)."""
    items = (subscription.get("items") or {}).get("data") or []
    item = items[0] if items else {}
    price = item.get("price") or item.get("plan") or subscription.get("plan") or {}
    price_id = price.get("id", "") if isinstance(price, dict) else str(price)
    start = _timestamp(item.get("current_period_start")) or _timestamp(subscription.get("current_period_start"))
    end = _timestamp(item.get("current_period_end")) or _timestamp(subscription.get("current_period_end"))
    return price_id, start, end


def _customer_id(obj: dict[str, Any]) -> str:
    customer = obj.get("customer")
    return customer if isinstance(customer, str) else (customer or {}).get("id", "")


def _newer_event_applied(*, object_id: str, event_id: str, created: datetime) -> bool:
    return (
        StripeEvent.objects.filter(
            object_id=object_id,
            type__startswith="customer.subscription.",
            status=StripeEvent.Status.SUCCEEDED,
            stripe_created_at__gt=created,
        )
        .exclude(event_id=event_id)
        .exists()
    )


def _account_for_subscription(subscription: dict[str, Any]) -> Account:
    local = Subscription.objects.filter(stripe_subscription_id=subscription["id"]).select_related("account").first()
    if local is not None:
        return local.account
    customer_id = _customer_id(subscription)
    account = account_for_customer(customer_id=customer_id)
    if account is None:
        raise StripeDataError(f"subscription {subscription['id']}: no account has Stripe customer {customer_id!r}")
    return account


@transaction.atomic
def subscription_sync_from_stripe(
    *, subscription: dict[str, Any], event_id: str, event_created: datetime, deleted: bool = False
) -> str:
    """Bring the account's local subscription in step with a Stripe subscription from an event. Returns what it
    did. Raises StripeDataError when the customer or the price is unknown (the event fails and is retried)."""
    sub_id = subscription["id"]
    account = _account_for_subscription(subscription)
    Account.objects.select_for_update().get(pk=account.pk)
    # checked under the account's lock, so a concurrent event for the same subscription is seen once committed
    if _newer_event_applied(object_id=sub_id, event_id=event_id, created=event_created):
        return f"{sub_id}: skipped, a newer event for it was already applied"
    local = Subscription.objects.select_for_update(of=("self",)).select_related("plan").get(account=account)
    stripe_status = "canceled" if deleted else str(subscription.get("status") or "")
    another = bool(local.stripe_subscription_id) and local.stripe_subscription_id != sub_id
    if another and _live(local) and stripe_status not in LIVE_STRIPE_STATUSES:
        return f"{sub_id}: ignored ({stripe_status}), the account's subscription is {local.stripe_subscription_id}"
    if stripe_status == "incomplete":
        return f"{sub_id}: incomplete (first payment pending), nothing changed"
    status = STATUS_FROM_STRIPE.get(stripe_status)
    if status is None:
        raise StripeDataError(f"{sub_id}: unknown subscription status {stripe_status!r}")
    price_id, period_start, period_end = subscription_price_and_period(subscription)
    found = plan_for_price(price_id=price_id) if price_id else None
    if found is None and status != Subscription.Status.CANCELED:
        raise StripeDataError(f"{sub_id}: no plan has Stripe price {price_id!r}")
    done = []
    if found is not None and status != Subscription.Status.CANCELED:
        plan, interval = found
        if plan.pk != local.plan_id:
            subscription_change_plan(account=account, plan=plan, apply_now=True, as_of=timezone.now())
            local.refresh_from_db()
            done.append(f"plan {plan.code}")
        local.interval = interval
    local.stripe_subscription_id = sub_id
    local.stripe_price_id = price_id or local.stripe_price_id
    if local.status != status:
        done.append(f"status {status}")
    local.status = status
    if status == Subscription.Status.PAST_DUE:
        local.past_due_since = local.past_due_since or event_created
    elif status in (Subscription.Status.ACTIVE, Subscription.Status.TRIALING):
        local.past_due_since = None
    if period_start and period_end and period_end > period_start:
        local.current_period_start, local.current_period_end = period_start, period_end
    local.cancel_at_period_end = bool(subscription.get("cancel_at_period_end")) and not deleted
    local.save()
    return f"{sub_id} -> account {account.pk}: " + (", ".join(done) if done else "in step")


def subscription_payment_failed(*, account: Account, failed_at: datetime) -> bool:
    """Mark the account past due (the grace period runs from the first failure). True when it changed."""
    local = Subscription.objects.select_for_update().get(account=account)
    if local.status == Subscription.Status.CANCELED:
        return False
    changed = local.status != Subscription.Status.PAST_DUE or local.past_due_since is None
    local.status = Subscription.Status.PAST_DUE
    local.past_due_since = local.past_due_since or failed_at
    local.save(update_fields=["status", "past_due_since"])
    return changed


def subscription_payment_recovered(*, account: Account) -> bool:
    """A payment succeeded: a past-due subscription is active again. True when it changed."""
    return bool(
        Subscription.objects.filter(account=account, status=Subscription.Status.PAST_DUE).update(
            status=Subscription.Status.ACTIVE, past_due_since=None
        )
    )
