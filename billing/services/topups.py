"""Credit top-ups by card: Checkout for a person at the dashboard, off-session PaymentIntents for auto-recharge.

A top-up fixes its credits at the credits rate in force when it is created. The wallet is credited only from a
verified webhook (`checkout.session.completed`, `payment_intent.succeeded`) or a PaymentIntent Stripe confirmed,
through `wallet_grant(kind="topup", reference=<session or PaymentIntent id>)`: the reference is unique per kind, so
every path that learns of the same payment credits it once.

Auto-recharge: when a usage debit takes the balance from at or above the account's threshold to below it, a task
charges the saved card off-session (key `recharge:<top-up id>`). A decline alerts the account; after
`AUTO_RECHARGE_MAX_FAILURES` failures in a row auto-recharge turns itself off until the account turns it back on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.errors import BillingError, InvalidAmount
from billing.models import Account, AutoRecharge, LedgerEntry, TopUp, Wallet
from billing.services.audit import Actor, actor_or_none, audit_record
from billing.services.stripe_customers import customer_ensure
from billing.services.wallet import Posting, wallet_grant
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_enabled, stripe_settings
from pricing.money import CREDITS, USD, Money, MoneyError, precise, to_decimal
from pricing.selectors import catalog_snapshot

logger = logging.getLogger("tokenledger.stripe")

CENT = Decimal("0.01")


class StripeDataError(BillingError):
    """A Stripe object that does not match what TokenLedger sent or knows (wrong amount, unknown top-up, ...)."""

    code = "stripe_data_mismatch"
    status_code = 409


def _usd(value: object, *, field: str) -> Decimal:
    try:
        amount = to_decimal(value)
    except MoneyError as exc:
        raise InvalidAmount(f"{field}: {exc}") from None
    if amount != amount.quantize(CENT):
        raise InvalidAmount(f"{field}: at most 2 decimal places (whole cents), got {amount}")
    return amount


def credits_rate(*, at: datetime) -> Decimal:
    """Credits per USD in force at `at`."""
    return catalog_snapshot().rate_at(CREDITS, at).rate


# --- Checkout top-ups --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopUpStarted:
    topup: TopUp
    checkout_url: str


def topup_pending_create(
    *, account: Account, amount_usd: object, save_payment_method: bool = False, actor: Actor = None,
    now: datetime | None = None,
) -> TopUp:  # fmt: skip
    """A pending Checkout top-up of `amount_usd` (between TOPUP_MIN_USD and TOPUP_MAX_USD) for an active account,
    its credits fixed at the rate in force now; committed at once, since its id keys what follows."""
    conf = stripe_settings()
    now = now or timezone.now()
    amount = _usd(amount_usd, field="amount_usd")
    if not conf.topup_min_usd <= amount <= conf.topup_max_usd:
        raise InvalidAmount(
            f"amount_usd must be between {conf.topup_min_usd} and {conf.topup_max_usd} USD, got {amount}"
        )
    if account.status != Account.Status.ACTIVE:
        raise InvalidAmount(f"account {account.pk} is {account.status}: top-ups are closed")
    rate = credits_rate(at=now)
    with transaction.atomic():
        return TopUp.objects.create(
            account=account, source=TopUp.Source.CHECKOUT, amount_usd=amount, currency=USD,
            amount_cents=Money(amount, USD).to_minor_units(), credits=precise(amount * rate), rate=rate,
            save_payment_method=save_payment_method, created_by=actor_or_none(actor), created_at=now,
        )  # fmt: skip


def topup_create(
    *, account: Account, amount_usd: object, save_payment_method: bool = False, actor: Actor = None,
    now: datetime | None = None,
) -> TopUpStarted:  # fmt: skip
    """A pending top-up of `amount_usd` (between TOPUP_MIN_USD and TOPUP_MAX_USD) and its Checkout page.

    The top-up is committed before Stripe is called (its id is the idempotency key), so call this outside a
    request transaction. A Stripe failure marks the top-up failed and raises the gateway's error.
    """
    conf = stripe_settings()
    if not conf.enabled:
        raise gateway.StripeNotConfigured(NOT_CONFIGURED_MESSAGE)
    topup = topup_pending_create(
        account=account, amount_usd=amount_usd, save_payment_method=save_payment_method, actor=actor, now=now
    )
    price = Money(topup.amount_usd, USD)
    amount = topup.amount_usd
    try:
        customer_id = customer_ensure(account=account)
        session = gateway.checkout_session_create_payment(
            customer_id=customer_id,
            amount=price,
            product_name=f"{topup.credits.normalize():f} TokenLedger credits",
            metadata={"topup_id": str(topup.pk), "account_id": str(account.pk)},
            client_reference_id=str(topup.pk),
            success_url=conf.checkout_success_url,
            cancel_url=conf.checkout_cancel_url,
            save_payment_method=save_payment_method,
            idempotency_key=f"topup:{topup.pk}",
        )
    except gateway.StripeGatewayError as exc:
        TopUp.objects.filter(pk=topup.pk).update(status=TopUp.Status.FAILED, failure_message=str(exc)[:500])
        raise
    url = session.get("url") or ""
    TopUp.objects.filter(pk=topup.pk).update(stripe_checkout_session_id=session["id"], checkout_url=url)
    topup.stripe_checkout_session_id, topup.checkout_url = session["id"], url
    audit_record(action="topup_started", account=account, object_type="TopUp", object_key=str(topup.pk),
                 actor=actor, after={"amount_usd": amount, "credits": topup.credits, "session": session["id"]})  # fmt: skip
    return TopUpStarted(topup=topup, checkout_url=url)


@transaction.atomic
def topup_credit(*, topup_id: int, reference: str, paid_at: datetime, payment_intent_id: str = "") -> Posting:
    """Credit a paid top-up's fixed credits once (the ledger reference is the Stripe session or PaymentIntent id)
    and mark it paid. A second call, from any path, changes nothing."""
    topup = TopUp.objects.select_for_update().get(pk=topup_id)
    posting = wallet_grant(
        account=topup.account, credits=topup.credits, reason=f"top-up #{topup.pk} ({topup.amount_usd} USD)",
        kind=LedgerEntry.Kind.TOPUP, reference=reference, usd_amount=topup.amount_usd, rate=topup.rate,
    )  # fmt: skip
    if topup.status != TopUp.Status.PAID or topup.ledger_entry_id is None:
        topup.status, topup.paid_at, topup.failure_message = TopUp.Status.PAID, paid_at, ""
        topup.ledger_entry = posting.entry
        if payment_intent_id and not topup.stripe_payment_intent_id:
            topup.stripe_payment_intent_id = payment_intent_id
        topup.save(update_fields=["status", "paid_at", "failure_message", "ledger_entry", "stripe_payment_intent_id"])
    return posting


def _metadata_id(obj: dict[str, Any], key: str) -> int | None:
    raw = (obj.get("metadata") or {}).get(key)
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _topup_for(obj: dict[str, Any]) -> TopUp:
    topup_id = _metadata_id(obj, "topup_id")
    if topup_id is None:
        reference = obj.get("client_reference_id") or ""
        topup_id = int(reference) if str(reference).isdigit() else None
    topup = TopUp.objects.filter(pk=topup_id).first() if topup_id is not None else None
    if topup is None:
        raise StripeDataError(f"{obj.get('object')} {obj.get('id')} names no known top-up (metadata.topup_id)")
    account_id = _metadata_id(obj, "account_id")
    if account_id is not None and account_id != topup.account_id:
        raise StripeDataError(
            f"{obj.get('id')}: top-up #{topup.pk} belongs to account {topup.account_id}, not {account_id}"
        )
    return topup


def topup_checkout_completed(*, session: dict[str, Any], at: datetime) -> str:
    """`checkout.session.completed` (or `async_payment_succeeded`) for a top-up: credit it once when paid."""
    topup = _topup_for(session)
    if topup.stripe_checkout_session_id and topup.stripe_checkout_session_id != session["id"]:
        raise StripeDataError(f"top-up #{topup.pk} has session {topup.stripe_checkout_session_id}, not {session['id']}")
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return f"top-up #{topup.pk}: payment status {session.get('payment_status')!r}, waiting"
    amount, currency = session.get("amount_total"), str(session.get("currency") or "").upper()
    if amount != topup.amount_cents or currency != topup.currency:
        raise StripeDataError(
            f"session {session['id']} paid {amount} {currency}, top-up #{topup.pk} is {topup.amount_cents} {topup.currency}"
        )
    payment_intent = session.get("payment_intent")
    payment_intent_id = payment_intent if isinstance(payment_intent, str) else (payment_intent or {}).get("id", "")
    with transaction.atomic():
        if not topup.stripe_checkout_session_id:
            TopUp.objects.filter(pk=topup.pk).update(stripe_checkout_session_id=session["id"])
        posting = topup_credit(
            topup_id=topup.pk, reference=session["id"], paid_at=at, payment_intent_id=payment_intent_id
        )
    outcome = f"top-up #{topup.pk}: {'credited' if posting.created else 'already credited'} {topup.credits} credits"
    if topup.save_payment_method and payment_intent_id and stripe_settings().enabled:
        method = gateway.payment_intent_retrieve(payment_intent_id=payment_intent_id).get("payment_method")
        method_id = method if isinstance(method, str) else (method or {}).get("id", "")
        if method_id:
            auto_recharge_payment_method_save(account=topup.account, payment_method_id=method_id)
            outcome += f"; card {method_id} saved for auto-recharge"
    return outcome


def topup_checkout_expired(*, session: dict[str, Any]) -> str:
    topup = _topup_for(session)
    updated = TopUp.objects.filter(pk=topup.pk, status=TopUp.Status.PENDING).update(
        status=TopUp.Status.CANCELED, failure_message="Checkout session expired"
    )
    return f"top-up #{topup.pk}: {'canceled' if updated else 'left as ' + topup.status} (session expired)"


# --- auto-recharge -----------------------------------------------------------------------------------------------


@transaction.atomic
def auto_recharge_configure(
    *, account: Account, enabled: bool, threshold_credits: object, amount_usd: object,
    payment_method_id: str | None = None, actor: Actor = None,
) -> AutoRecharge:  # fmt: skip
    """Set the account's auto-recharge. A new card is attached to the account's Stripe customer first (a declined
    card raises CardDeclined and nothing is saved). Turning it on needs Stripe, a card and an amount in range."""
    conf = stripe_settings()
    try:
        threshold = to_decimal(threshold_credits)
    except MoneyError as exc:
        raise InvalidAmount(f"threshold_credits: {exc}") from None
    if threshold < 0:
        raise InvalidAmount("threshold_credits must be >= 0")
    amount = _usd(amount_usd, field="amount_usd")
    Account.objects.select_for_update().get(pk=account.pk)
    row, _ = AutoRecharge.objects.select_for_update().get_or_create(account=account)
    before = {"enabled": row.enabled, "threshold": row.threshold_credits, "amount_usd": row.amount_usd}
    if payment_method_id and payment_method_id != row.stripe_payment_method_id:
        if not conf.enabled:
            raise gateway.StripeNotConfigured(NOT_CONFIGURED_MESSAGE)
        customer_id = customer_ensure(account=account)
        gateway.payment_method_attach(
            payment_method_id=payment_method_id, customer_id=customer_id,
            idempotency_key=f"payment-method:{account.pk}:{payment_method_id}",
        )  # fmt: skip
        row.stripe_payment_method_id = payment_method_id
    if enabled:
        if not conf.enabled:
            raise gateway.StripeNotConfigured(NOT_CONFIGURED_MESSAGE)
        if not conf.topup_min_usd <= amount <= conf.topup_max_usd:
            raise InvalidAmount(f"amount_usd must be between {conf.topup_min_usd} and {conf.topup_max_usd} USD")
        if not row.stripe_payment_method_id:
            raise InvalidAmount(
                "auto-recharge needs a saved card: pass payment_method_id or top up once saving the card"
            )
        if not row.enabled:
            row.consecutive_failures, row.disabled_reason = 0, ""
    row.enabled, row.threshold_credits, row.amount_usd = enabled, threshold, amount
    row.save()
    audit_record(action="auto_recharge_configured", account=account, object_type="AutoRecharge", object_key=str(row.pk),
                 actor=actor, before=before, after={"enabled": enabled, "threshold": threshold, "amount_usd": amount})  # fmt: skip
    return row


@transaction.atomic
def auto_recharge_payment_method_save(*, account: Account, payment_method_id: str) -> AutoRecharge:
    """Keep the card of a top-up paid with "save card" for auto-recharge (it stays off until turned on)."""
    row, _ = AutoRecharge.objects.select_for_update().get_or_create(account=account)
    if row.stripe_payment_method_id != payment_method_id:
        row.stripe_payment_method_id = payment_method_id
        row.save(update_fields=["stripe_payment_method_id", "updated_at"])
    return row


def auto_recharge_check(*, account: Account, balance_before: Decimal, balance_after: Decimal) -> bool:
    """Call after a debit, inside its transaction: when the balance crossed from at or above the account's
    threshold to below it, queue the recharge task on commit. True when it queued one."""
    if balance_after >= balance_before or not stripe_enabled():
        return False
    threshold = (
        AutoRecharge.objects.filter(account_id=account.pk, enabled=True)
        .exclude(stripe_payment_method_id="")
        .values_list("threshold_credits", flat=True)
        .first()
    )
    if threshold is None or not balance_before >= threshold > balance_after:
        return False
    account_id = account.pk

    def queue() -> None:
        from billing.tasks import auto_recharge_task

        auto_recharge_task.delay(account_id)

    transaction.on_commit(queue)
    return True


@dataclass(frozen=True)
class RechargeOutcome:
    status: str  # skipped | paid | pending | failed
    message: str
    topup_id: int | None = None


def _cooling_down(row: AutoRecharge, *, now: datetime) -> bool:
    """After a failure, wait cooldown x 2^(failures-1) before charging again."""
    if not row.consecutive_failures or row.last_attempt_at is None:
        return False
    wait = stripe_settings().auto_recharge_cooldown_seconds * 2 ** (row.consecutive_failures - 1)
    return now < row.last_attempt_at + timedelta(seconds=wait)


def auto_recharge_run(*, account_id: int, now: datetime | None = None) -> RechargeOutcome:
    """Charge the saved card for one recharge when the balance is below the threshold (or resume the one in
    flight). A transient Stripe error propagates with the top-up still pending, so a retry resends the same key."""
    now = now or timezone.now()
    if not stripe_settings().enabled:
        return RechargeOutcome("skipped", NOT_CONFIGURED_MESSAGE)
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        row = AutoRecharge.objects.select_for_update().filter(account=account).first()
        if row is None or not row.enabled or not row.stripe_payment_method_id:
            return RechargeOutcome("skipped", "auto-recharge is off")
        topup = (
            TopUp.objects.filter(account=account, source=TopUp.Source.AUTO_RECHARGE, status=TopUp.Status.PENDING)
            .order_by("pk")
            .first()
        )
        if topup is None:
            wallet = Wallet.objects.get(account=account)
            if wallet.balance - wallet.held >= row.threshold_credits:
                return RechargeOutcome("skipped", "balance is not below the threshold")
            if _cooling_down(row, now=now):
                return RechargeOutcome("skipped", "waiting after a failed recharge")
            rate = credits_rate(at=now)
            price = Money(row.amount_usd, USD)
            topup = TopUp.objects.create(
                account=account, source=TopUp.Source.AUTO_RECHARGE, amount_usd=row.amount_usd, currency=USD,
                amount_cents=price.to_minor_units(), credits=precise(row.amount_usd * rate), rate=rate,
                created_at=now,
            )  # fmt: skip
        row.last_attempt_at = now
        row.save(update_fields=["last_attempt_at", "updated_at"])
        payment_method_id = row.stripe_payment_method_id
    if topup.stripe_payment_intent_id:
        # a charge was already answered for this top-up: settle by it, never charge again
        intent = gateway.payment_intent_retrieve(payment_intent_id=topup.stripe_payment_intent_id)
        return recharge_settle(topup_id=topup.pk, intent=intent, now=now)
    try:
        customer_id = customer_ensure(account=account)
        intent = gateway.payment_intent_create_off_session(
            customer_id=customer_id, payment_method_id=payment_method_id, amount=Money(topup.amount_usd, USD),
            metadata={"topup_id": str(topup.pk), "account_id": str(account.pk), "kind": "auto_recharge"},
            idempotency_key=f"recharge:{topup.pk}",
        )  # fmt: skip
    except (gateway.CardDeclined, gateway.StripePermanentError) as exc:
        return recharge_fail(topup_id=topup.pk, message=str(exc), now=now)
    TopUp.objects.filter(pk=topup.pk).update(stripe_payment_intent_id=intent["id"])
    return recharge_settle(topup_id=topup.pk, intent=intent, now=now)


def recharge_settle(*, topup_id: int, intent: dict[str, Any], now: datetime) -> RechargeOutcome:
    """Settle a top-up by its PaymentIntent: credit on `succeeded`, fail on a dead end, else keep waiting."""
    status = intent.get("status")
    if status == "succeeded":
        topup_credit(topup_id=topup_id, reference=intent["id"], paid_at=now, payment_intent_id=intent["id"])
        with transaction.atomic():
            topup = TopUp.objects.get(pk=topup_id)
            AutoRecharge.objects.filter(account_id=topup.account_id).update(consecutive_failures=0)
        return RechargeOutcome("paid", f"top-up #{topup_id} paid by {intent['id']}", topup_id)
    if status in ("requires_payment_method", "canceled"):
        error = intent.get("last_payment_error") or {}
        return recharge_fail(topup_id=topup_id, message=error.get("message") or f"payment {status}", now=now)
    return RechargeOutcome("pending", f"top-up #{topup_id}: payment {intent.get('id')} is {status}", topup_id)


def recharge_fail(*, topup_id: int, message: str, now: datetime) -> RechargeOutcome:
    """A recharge that will not be paid: mark it failed, count the failure, alert the account, and turn
    auto-recharge off after too many in a row."""
    max_failures = stripe_settings().auto_recharge_max_failures
    with transaction.atomic():
        topup = TopUp.objects.select_for_update(of=("self",)).select_related("account").get(pk=topup_id)
        if topup.status != TopUp.Status.PENDING:
            return RechargeOutcome(topup.status, f"top-up #{topup_id} is already {topup.status}", topup_id)
        topup.status, topup.failure_message = TopUp.Status.FAILED, message[:500]
        topup.save(update_fields=["status", "failure_message"])
        row = AutoRecharge.objects.select_for_update().get(account_id=topup.account_id)
        row.consecutive_failures += 1
        stopped = row.enabled and row.consecutive_failures >= max_failures
        if stopped:
            row.enabled = False
            row.disabled_reason = f"turned off after {row.consecutive_failures} failed recharges: {message}"[:500]
        row.save(update_fields=["consecutive_failures", "enabled", "disabled_reason", "updated_at"])
        tail = " Auto-recharge is now off; turn it back on after updating the card." if stopped else ""
        payment_failure_alert(
            account=topup.account,
            reference=f"recharge:{topup.pk}",
            subject="Auto-recharge failed",
            message=f"We could not charge {topup.amount_usd} USD to your saved card: {message}.{tail}",
            at=now,
        )
    logger.warning("auto-recharge top-up #%s for account %s failed: %s", topup_id, topup.account_id, message)
    return RechargeOutcome("failed", message, topup_id)


def auto_recharge_accounts_due() -> list[int]:
    """Accounts with auto-recharge on whose available credits are below their threshold (for the sweep job)."""
    due = []
    for account_id, threshold in (
        AutoRecharge.objects.filter(enabled=True)
        .exclude(stripe_payment_method_id="")
        .values_list("account_id", "threshold_credits")
    ):
        wallet = Wallet.objects.filter(account_id=account_id).values_list("balance", "held").first()
        if wallet is not None and wallet[0] - wallet[1] < threshold:
            due.append(account_id)
    return due


# --- telling the account ------------------------------------------------------------------------------------------


def payment_failure_alert(*, account: Account, reference: str, subject: str, message: str, at: datetime) -> None:
    """Record a failed payment in the audit log and, on commit, hand it to the alert channels (email, signed
    webhook) through the `usage.payment_failed_alert` task: billing never imports the usage app."""
    audit_record(action="payment_failed", account=account, object_type="Payment", object_key=reference,
                 after={"subject": subject, "message": message, "at": at})  # fmt: skip
    kwargs = {"account_id": account.pk, "reference": reference, "subject": subject, "message": message,
              "at": at.isoformat()}  # fmt: skip

    def send() -> None:
        from billing.tasks import payment_failed_alert_send

        payment_failed_alert_send(**kwargs)

    transaction.on_commit(send)
