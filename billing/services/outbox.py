"""The invoice outbox: what must follow an invoice is written with it and sent afterwards, never lost, never twice.

The close writes one row per invoice and kind (the overage billing when the invoice bills beyond its base fee, the
monthly summary always) in the transaction that writes the invoice, under a unique constraint. `outbox_send_due`
sends every pending row that is due, whichever run wrote it: the close calls it at its end and the `send outbox`
beat job calls it every few minutes, so rows left by a killed run, a broker or Stripe that was down are found. A
sender claims a row for a few minutes before it works on it, so two senders never work on the same row; a failed
send keeps the row pending with its error and retries with backoff; a sent row is never picked again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Invoice, InvoiceOutbox

logger = logging.getLogger("tokenledger.outbox")

Kind = InvoiceOutbox.Kind
CLAIM_SECONDS = 600
RETRY_BASE_SECONDS = 60
RETRY_CAP_SECONDS = 6 * 3600
SEND_CHUNK = 200


@dataclass(frozen=True)
class OutboxResult:
    """What a handler did with one row: sent (done for good), or an error that keeps it pending."""

    sent: bool
    outcome: str = ""
    error: str = ""


# a handler takes the invoices of one chunk of rows of its kind and answers each invoice id
OutboxHandler = Callable[[list[Invoice], datetime], dict[int, OutboxResult]]


def outbox_rows_for(*, invoices: Iterable[Invoice], at: datetime) -> list[InvoiceOutbox]:
    """The (unsaved) rows that must follow these invoices: the overage when one is billed, the summary always."""
    rows: list[InvoiceOutbox] = []
    for invoice in invoices:
        if invoice.total - invoice.base_charge > 0:
            rows.append(InvoiceOutbox(invoice=invoice, kind=Kind.OVERAGE, created_at=at))
        rows.append(InvoiceOutbox(invoice=invoice, kind=Kind.MONTHLY_SUMMARY, created_at=at))
    return rows


def outbox_write(*, invoices: list[Invoice]) -> None:
    """Write the outbox rows of freshly saved invoices; must run in the transaction that wrote them."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox rows must be written in the invoice's transaction")
    rows = outbox_rows_for(invoices=invoices, at=timezone.now())  # when written, whatever the close's as_of
    InvoiceOutbox.objects.bulk_create(rows, ignore_conflicts=True)


def _due(*, as_of: datetime, now: datetime) -> Q:
    return (
        Q(status=InvoiceOutbox.Status.PENDING)
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=as_of))
        & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    )


def _claim(*, kind: str, as_of: datetime, now: datetime) -> list[int]:
    """Claim up to SEND_CHUNK due rows of `kind`: an UPDATE that only takes rows nobody else holds."""
    with transaction.atomic():
        ids = list(
            InvoiceOutbox.objects.select_for_update(skip_locked=True)
            .filter(_due(as_of=as_of, now=now), kind=kind)
            .order_by("pk")
            .values_list("pk", flat=True)[:SEND_CHUNK]
        )
        if ids:
            InvoiceOutbox.objects.filter(pk__in=ids).update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    return ids


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th failed attempt: one minute, doubling, at most six hours."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_CAP_SECONDS))


def _record(*, row_id: int, result: OutboxResult, as_of: datetime) -> bool:
    with transaction.atomic():
        row = InvoiceOutbox.objects.select_for_update().get(pk=row_id)
        if row.status == InvoiceOutbox.Status.SENT:
            return False
        row.attempts += 1
        row.claimed_until = None
        row.outcome = result.outcome[:500]
        if result.sent:
            row.status, row.sent_at, row.last_error, row.next_attempt_at = (
                InvoiceOutbox.Status.SENT, as_of, "", None,
            )  # fmt: skip
        else:
            row.last_error = result.error[:2000]
            row.next_attempt_at = as_of + retry_delay(row.attempts)
        row.save()
        return result.sent


def outbox_send_due(*, as_of: datetime, handlers: dict[str, OutboxHandler]) -> dict[str, int]:
    """Send every pending outbox row due by `as_of`, in chunks per kind; idempotent.

    A handler's exception keeps the chunk's rows pending with the error (never raised: one failure never stops
    the others). Returns {"sent", "failed"}.
    """
    sent = failed = 0
    for kind, handler in handlers.items():
        seen: set[int] = set()
        while True:
            now = timezone.now()
            ids = [pk for pk in _claim(kind=kind, as_of=as_of, now=now) if pk not in seen]
            if not ids:
                break
            seen.update(ids)
            rows = list(InvoiceOutbox.objects.filter(pk__in=ids).select_related("invoice__account", "invoice__period"))
            try:
                results = handler([row.invoice for row in rows], as_of)
            except Exception as exc:
                logger.exception("outbox %s: a chunk of %s rows failed", kind, len(rows))
                results = {row.invoice_id: OutboxResult(False, error=f"{type(exc).__name__}: {exc}") for row in rows}
            for row in rows:
                result = results.get(row.invoice_id) or OutboxResult(False, error="the handler gave no answer")
                if _record(row_id=row.pk, result=result, as_of=as_of):
                    sent += 1
                elif not result.sent:
                    failed += 1
                    logger.warning("outbox %s of invoice #%s stays pending: %s", kind, row.invoice_id, result.error)
    return {"sent": sent, "failed": failed}


def outbox_pending_count() -> int:
    return InvoiceOutbox.objects.filter(status=InvoiceOutbox.Status.PENDING).count()


@transaction.atomic
def outbox_retry_now(*, row_ids: list[int]) -> int:
    """Make pending rows due at once (the admin action); sent rows are left alone."""
    return InvoiceOutbox.objects.filter(pk__in=row_ids, status=InvoiceOutbox.Status.PENDING).update(
        next_attempt_at=None, claimed_until=None
    )
