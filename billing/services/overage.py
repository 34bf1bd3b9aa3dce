"""Postpaid overage billed through Stripe, never twice.

At the period close, `overage_invoice_send` bills what the period's overage left to pay: an invoice item in cents
("Overage: N units x rate"), an invoice that takes it, finalized with automatic collection, and a payment attempt.
Each step is keyed by the local invoice id (`overage-item:<id>`, `overage-invoice:<id>`, `overage-finalize:<id>`,
`overage-pay:<id>`) and recorded in the period's `OverageBilling` cursor under a row lock before the next step
starts. A retried job resumes from the cursor, and a crash between a Stripe call and the cursor update resends
the same key, which Stripe answers with the first result.

For a Stripe subscription, `invoice.upcoming` puts the overage accrued so far in the period that the renewal
closes on the renewal invoice (a pending item on the subscription, key `overage-upcoming:<period id>`, once per
period); the close then bills only the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.models import Account, BillingPeriod, Invoice, OverageBilling
from billing.services.outbox import OutboxResult
from billing.services.stripe_customers import customer_ensure
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_settings
from pricing.money import Money

logger = logging.getLogger("tokenledger.stripe")

Step = OverageBilling.Step
DONE_STEPS = {Step.PAID, Step.PAYMENT_FAILED, Step.NOTHING_DUE}
RETRY_CAP_SECONDS = 6 * 3600


@dataclass(frozen=True)
class OverageOutcome:
    """What `overage_invoice_send` did. True when the overage is on a Stripe invoice."""

    status: str  # no_overage | stripe_off | nothing_due | invoiced | payment_failed | failed
    message: str
    stripe_invoice_id: str = ""
    amount_cents: int = 0

    def __bool__(self) -> bool:
        return bool(self.stripe_invoice_id)


def _plain_number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def overage_billable(*, invoice: Invoice) -> Money:
    """The overage the invoice charges after the spend cap: its total beyond the base fee, never negative."""
    beyond = invoice.total - invoice.base_charge
    return Money(beyond if beyond > 0 else Decimal(0), invoice.currency)


def overage_description(*, invoice: Invoice) -> str:
    period = invoice.period
    rate = period.terms.overage_rate
    text = (
        f"Overage: {_plain_number(invoice.overage_units)} {invoice.unit} x {_plain_number(rate)} {invoice.currency}"
        f" ({period.start:%Y-%m-%d} to {period.end:%Y-%m-%d})"
    )
    text += ", monthly spend cap applied" if invoice.cap_applied else ""
    if invoice.late_usage:
        text += f", late usage of earlier periods {_plain_number(invoice.late_usage)} {invoice.currency}"
    return text


def _metadata(*, invoice: Invoice) -> dict[str, str]:
    return {"tokenledger_invoice_id": str(invoice.pk), "period_id": str(invoice.period_id),
            "account_id": str(invoice.account_id)}  # fmt: skip


def _cursor(*, period_id: int, invoice: Invoice | None = None) -> OverageBilling:
    cursor, _ = OverageBilling.objects.get_or_create(period_id=period_id, defaults={"invoice": invoice})
    if invoice is not None and cursor.invoice_id is None:
        OverageBilling.objects.filter(pk=cursor.pk, invoice__isnull=True).update(invoice=invoice)
    return cursor


def _step(cursor_id: int, expected: str, work: Callable[[OverageBilling], None]) -> OverageBilling:
    """Run one step under the cursor's lock, only if the cursor is still at `expected`."""
    with transaction.atomic():
        cursor = OverageBilling.objects.select_for_update().get(pk=cursor_id)
        if cursor.step == expected:
            cursor.last_error, cursor.next_attempt_at = "", None
            work(cursor)
            cursor.save()
        return cursor


def overage_invoice_send(*, invoice: Invoice, as_of: datetime) -> OverageOutcome:
    """Bill the invoice's overage in Stripe (idempotent; resumes where a previous call stopped). With Stripe off it
    does nothing and says so. A Stripe error is recorded on the cursor and retried by the `billing.stripe_retry`
    job; it is not raised, so one account's failure never stops a period-close run."""
    invoice = Invoice.objects.select_related("period__terms", "account").get(pk=invoice.pk)
    billable = overage_billable(invoice=invoice)
    if billable.amount <= 0:
        return OverageOutcome("no_overage", f"invoice #{invoice.pk} has no overage to bill")
    if not stripe_settings().enabled:
        message = f"{NOT_CONFIGURED_MESSAGE}: overage of invoice #{invoice.pk} ({billable.rounded()}) was not sent"
        logger.info(message)
        return OverageOutcome("stripe_off", message)
    cursor = _cursor(period_id=invoice.period_id, invoice=invoice)
    try:
        cursor = _advance(cursor=cursor, invoice=invoice, billable=billable)
    except gateway.StripeGatewayError as exc:
        return _failed(cursor_id=cursor.pk, invoice=invoice, exc=exc, now=as_of)
    return _outcome(cursor=cursor, invoice=invoice)


def _advance(*, cursor: OverageBilling, invoice: Invoice, billable: Money) -> OverageBilling:
    key = invoice.pk
    customer_id = customer_ensure(account=invoice.account) if cursor.step in (Step.PENDING, Step.ITEM_CREATED) else ""
    if cursor.step == Step.PENDING:

        def item(c: OverageBilling) -> None:
            due = billable.to_minor_units() - c.renewal_cents
            c.description = overage_description(invoice=invoice)
            if due <= 0:
                c.step, c.amount_cents = Step.NOTHING_DUE, 0
                return
            created = gateway.invoice_item_create(
                customer_id=customer_id, amount=Money.from_minor_units(due, invoice.currency),
                description=c.description, metadata=_metadata(invoice=invoice), idempotency_key=f"overage-item:{key}",
            )  # fmt: skip
            c.step, c.amount_cents, c.stripe_invoice_item_id = Step.ITEM_CREATED, due, created["id"]

        cursor = _step(cursor.pk, Step.PENDING, item)
    if cursor.step == Step.ITEM_CREATED:

        def create(c: OverageBilling) -> None:
            created = gateway.invoice_create(
                customer_id=customer_id, description=c.description,
                metadata=_metadata(invoice=invoice), idempotency_key=f"overage-invoice:{key}",
            )  # fmt: skip
            c.step, c.stripe_invoice_id = Step.INVOICE_CREATED, created["id"]
            Invoice.objects.filter(pk=invoice.pk).update(stripe_invoice_id=created["id"])

        cursor = _step(cursor.pk, Step.ITEM_CREATED, create)
    if cursor.step == Step.INVOICE_CREATED:

        def finalize(c: OverageBilling) -> None:
            done = gateway.invoice_finalize(invoice_id=c.stripe_invoice_id, idempotency_key=f"overage-finalize:{key}")
            c.step = Step.PAID if done.get("status") == "paid" else Step.FINALIZED
            _invoice_from_stripe(invoice_id=invoice.pk, stripe_invoice=done)

        cursor = _step(cursor.pk, Step.INVOICE_CREATED, finalize)
    if cursor.step == Step.FINALIZED:

        def pay(c: OverageBilling) -> None:
            try:
                paid = gateway.invoice_pay(invoice_id=c.stripe_invoice_id, idempotency_key=f"overage-pay:{key}")
            except gateway.CardDeclined as exc:
                # the invoice stays open: Stripe keeps collecting, `invoice.payment_failed` marks the account past due
                c.step, c.last_error = Step.PAYMENT_FAILED, f"card declined: {exc}"
                return
            except gateway.StripePermanentError:
                paid = gateway.invoice_retrieve(invoice_id=c.stripe_invoice_id)
                if paid.get("status") != "paid":
                    raise
            c.step = Step.PAID if paid.get("status") == "paid" else Step.PAYMENT_FAILED
            _invoice_from_stripe(invoice_id=invoice.pk, stripe_invoice=paid)

        cursor = _step(cursor.pk, Step.FINALIZED, pay)
    return cursor


def _invoice_from_stripe(*, invoice_id: int, stripe_invoice: dict[str, Any]) -> None:
    changes: dict[str, Any] = {}
    if stripe_invoice.get("hosted_invoice_url"):
        changes["hosted_invoice_url"] = stripe_invoice["hosted_invoice_url"]
    if stripe_invoice.get("status") == "paid":
        paid_at = (stripe_invoice.get("status_transitions") or {}).get("paid_at")
        changes["status"] = Invoice.Status.PAID
        changes["paid_at"] = datetime.fromtimestamp(paid_at, tz=UTC) if isinstance(paid_at, int) else timezone.now()
    if changes:
        Invoice.objects.filter(pk=invoice_id).update(**changes)


def _failed(*, cursor_id: int, invoice: Invoice, exc: Exception, now: datetime) -> OverageOutcome:
    with transaction.atomic():
        cursor = OverageBilling.objects.select_for_update().get(pk=cursor_id)
        cursor.attempts += 1
        cursor.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        cursor.next_attempt_at = now + timedelta(seconds=min(60 * 2 ** (cursor.attempts - 1), RETRY_CAP_SECONDS))
        cursor.save(update_fields=["attempts", "last_error", "next_attempt_at", "updated_at"])
    logger.warning("overage of invoice #%s stopped at %s: %s", invoice.pk, cursor.step, cursor.last_error)
    return OverageOutcome("failed", f"stopped at {cursor.step}: {cursor.last_error}", cursor.stripe_invoice_id)


def _outcome(*, cursor: OverageBilling, invoice: Invoice) -> OverageOutcome:
    if cursor.step == Step.NOTHING_DUE:
        return OverageOutcome("nothing_due", f"invoice #{invoice.pk}: the overage was billed on the renewal invoice")
    status = "payment_failed" if cursor.step == Step.PAYMENT_FAILED else "invoiced"
    return OverageOutcome(status, f"invoice #{invoice.pk}: {cursor.step} {cursor.stripe_invoice_id}",
                          cursor.stripe_invoice_id, cursor.amount_cents)  # fmt: skip


def overage_outbox_send(invoices: list[Invoice], as_of: datetime) -> dict[int, OutboxResult]:
    """The outbox handler of overage rows: bill each invoice's overage. Done for good when Stripe has it (invoiced,
    payment failed: Stripe keeps collecting) or there is nothing to bill; pending with the reason otherwise (Stripe
    off or failing), so the row is sent once Stripe is back."""
    results: dict[int, OutboxResult] = {}
    for invoice in invoices:
        outcome = overage_invoice_send(invoice=invoice, as_of=as_of)
        done = outcome.status in ("no_overage", "nothing_due", "invoiced", "payment_failed")
        results[invoice.pk] = OutboxResult(done, outcome=f"{outcome.status}: {outcome.message}",
                                           error="" if done else outcome.message)  # fmt: skip
    return results


def overage_billing_resume(*, as_of: datetime) -> int:
    """Resume every overage cursor a Stripe error stopped whose next attempt is due (the retry job)."""
    max_attempts = stripe_settings().event_max_attempts
    due = (
        OverageBilling.objects.exclude(step__in=DONE_STEPS)
        .filter(invoice__isnull=False, next_attempt_at__lte=as_of, attempts__lt=max_attempts)
        .values_list("invoice_id", flat=True)
    )
    resumed = 0
    for invoice_id in list(due):
        invoice = Invoice.objects.get(pk=invoice_id)
        overage_invoice_send(invoice=invoice, as_of=as_of)
        resumed += 1
    return resumed


def overage_renewal_add(*, account: Account, subscription_id: str, period_end: datetime | None, now: datetime) -> str:
    """`invoice.upcoming`: put the overage accrued so far in the period the renewal closes on the renewal invoice,
    once per period (key `overage-upcoming:<period id>`). Returns what it did."""
    moment = (period_end - timedelta(seconds=1)) if period_end else now
    period = (
        BillingPeriod.objects.select_related("terms")
        .filter(account=account, start__lte=moment, end__gt=moment)
        .order_by("-start")
        .first()
    )
    if period is None:
        return f"no local period of account {account.pk} at {moment.isoformat()}"
    if period.status != BillingPeriod.Status.OPEN:
        return f"period {period.pk} is closed: its overage is billed at the close"
    owed = Money(period.overage_usd, period.terms.currency)
    cents = owed.to_minor_units()
    if cents <= 0:
        return f"period {period.pk}: no overage so far"
    cursor = _cursor(period_id=period.pk)
    with transaction.atomic():
        cursor = OverageBilling.objects.select_for_update().get(pk=cursor.pk)
        if cursor.renewal_cents or cursor.step != Step.PENDING:
            return f"period {period.pk}: overage already on a renewal or an invoice"
        description = (
            f"Overage so far: {_plain_number(period.overage_units)} {period.unit} x "
            f"{_plain_number(period.terms.overage_rate)} {period.terms.currency} "
            f"({period.start:%Y-%m-%d} to {moment:%Y-%m-%d})"
        )
        item = gateway.invoice_item_create(
            customer_id=customer_ensure(account=account), amount=Money.from_minor_units(cents, owed.currency),
            description=description, subscription_id=subscription_id,
            metadata={"period_id": str(period.pk), "account_id": str(account.pk)},
            idempotency_key=f"overage-upcoming:{period.pk}",
        )  # fmt: skip
        cursor.renewal_cents, cursor.renewal_item_id = cents, item["id"]
        cursor.save(update_fields=["renewal_cents", "renewal_item_id", "updated_at"])
    return f"period {period.pk}: {owed.rounded()} overage added to the renewal of {subscription_id}"
