"""The reservation lifecycle after authorize: release a hold whose call failed, and the refusals of a reused id.

A reservation is `active` from authorize until its request is recorded (`settled`), released by the client
(`released`: the call failed or was cancelled, the hold is freed at once) or swept by the expiry job (`expired`).
Release takes the same locks in the same order as recording and expiry (account, wallet, reservation), so a
release racing the recording of the same request frees the hold exactly once: whichever commits first decides,
and the books stay exact either way.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.models import Account
from billing.services.wallet import wallet_lock, wallet_release
from core.errors import DomainError
from usage.models import Reservation, UsageEvent


class ReservationError(DomainError):
    """A refusal of the reservation lifecycle, with the API error code and HTTP status it answers."""

    code = "reservation_error"


class ReservationNotFound(ReservationError):
    code = "not_found"
    status_code = 404


class AlreadyRecorded(ReservationError):
    code = "already_recorded"
    status_code = 409


class IdempotencyConflict(ReservationError):
    code = "idempotency_conflict"
    status_code = 409


def request_recorded(*, account: Account, request_id: str) -> bool:
    """Whether a usage event with this request id is stored for the account."""
    return UsageEvent.objects.filter(account=account, request_id=request_id).exists()


@transaction.atomic
def reservation_release(*, account: Account, request_id: str, now: datetime | None = None) -> Reservation:
    """Free the hold of a call that failed or was cancelled, now. Releasing twice answers the first release; a
    request already recorded cannot be released (AlreadyRecorded); an unknown one is ReservationNotFound. An
    expired reservation has nothing left to free and is answered as it is."""
    now = now or timezone.now()
    Account.objects.select_for_update().filter(pk=account.pk).values_list("pk", flat=True).get()
    wallet_lock(account=account)
    reservation = Reservation.objects.select_for_update().filter(account=account, request_id=request_id).first()
    if reservation is None:
        if request_recorded(account=account, request_id=request_id):
            raise AlreadyRecorded(f"Request {request_id!r} is already recorded; there is no hold to release.")
        raise ReservationNotFound(f"No reservation for request {request_id!r}.")
    if reservation.status == Reservation.Status.SETTLED:
        raise AlreadyRecorded(f"Request {request_id!r} is already recorded; its hold was settled.")
    if reservation.status != Reservation.Status.ACTIVE:
        return reservation
    Reservation.objects.filter(pk=reservation.pk).update(status=Reservation.Status.RELEASED, closed_at=now)
    if reservation.held_credits:
        wallet_release(account=account, credits=reservation.held_credits)
    reservation.status, reservation.closed_at = Reservation.Status.RELEASED, now
    return reservation
