"""Customers: accounts named by the reseller's own `external_id`, managed with a server key.

Every change goes through the account services (settings, status, plan, wallet, keys), so it is validated and
audited the same way as in the console or the dashboard.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.errors import BillingError, IdempotencyConflict, InvalidCustomer, UnknownDisplayCurrency
from billing.models import Account, Membership
from billing.selectors import customer_owner
from billing.services.accounts import account_create, account_set_status, account_settings_update, member_add
from billing.services.audit import Actor, audit_record
from billing.services.periods import plan_by_code, subscription_change_plan
from billing.services.wallet import Posting, wallet_grant
from pricing.money import MoneyError, to_decimal

EXTERNAL_ID_MAX = 128
METADATA_MAX_BYTES = 4096
CUSTOMER_FIELDS = (
    "name", "email", "plan", "display_currency", "low_balance_threshold", "alert_webhook_url", "metadata",
)  # fmt: skip
SETTINGS_FIELDS = ("name", "display_currency", "low_balance_threshold", "alert_webhook_url")


def _refuse(field: str, message: str) -> InvalidCustomer:
    return InvalidCustomer(field, message)


def text_is_clean(value: str) -> bool:
    """No NUL byte and no lone surrogate: text any database stores and any client reads back."""
    return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def external_id_check(value: object) -> str:
    """1 to 128 printable characters, not containing "/" (it is a path segment of the API)."""
    if not isinstance(value, str) or not 1 <= len(value) <= EXTERNAL_ID_MAX or not value.isprintable():
        raise _refuse("external_id", f"1 to {EXTERNAL_ID_MAX} printable characters")
    if "/" in value:
        raise _refuse("external_id", 'cannot contain "/"')
    return value


def _json_clean(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if isinstance(value, str):
        return text_is_clean(value)
    if isinstance(value, dict):
        return all(text_is_clean(str(k)) and _json_clean(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_clean(v, depth + 1) for v in value)
    return True


def metadata_check(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _refuse("metadata", "an object")
    if not _json_clean(value):
        raise _refuse("metadata", "text without NUL bytes or lone surrogates, nested at most 20 deep")
    size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
    if size > METADATA_MAX_BYTES:
        raise _refuse("metadata", f"at most {METADATA_MAX_BYTES} bytes as JSON, got {size}")
    return value


def _email_check(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _refuse("email", "an email address")
    email = value.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise _refuse("email", "an email address") from None
    if len(email) > 150:  # the owner signs in with it as username
        raise _refuse("email", "at most 150 characters")
    owner = get_user_model().objects.filter(username=email).first()
    if owner is not None and (owner.is_staff or owner.is_superuser):
        # a portal link signs the owner in: it must never sign in someone with console rights
        raise _refuse("email", "belongs to a staff user of this TokenLedger; use the customer's own address")
    return email


def customer_fields_check(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of a PUT, checked and normalized: only the ones given; unknown names are refused."""
    unknown = sorted(set(fields) - set(CUSTOMER_FIELDS))
    if unknown:
        raise _refuse(unknown[0], f"unknown field; the fields are {', '.join(CUSTOMER_FIELDS)}")
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "metadata":
            values[name] = metadata_check({} if value is None else value)
        elif name == "email":
            values[name] = None if value in (None, "") else _email_check(value)
        elif name == "low_balance_threshold":
            try:
                values[name] = to_decimal(value)
            except MoneyError as exc:
                raise _refuse(name, str(exc)) from None
        elif name == "alert_webhook_url":
            if value is not None and not isinstance(value, str):
                raise _refuse(name, "an http(s) URL, or empty to turn webhooks off")
            values[name] = value or ""
        else:
            if not isinstance(value, str) or not value.strip():
                raise _refuse(name, "required text" if name == "name" else "text")
            if not value.isprintable():
                raise _refuse(name, "printable characters only")
            values[name] = value.strip().upper() if name == "display_currency" else value.strip()
    if "name" in values and len(values["name"]) > 200:
        raise _refuse("name", "1 to 200 characters")
    return values


def _owner_user(email: str) -> User:
    user, created = get_user_model().objects.get_or_create(username=email, defaults={"email": email})
    if created:
        user.set_unusable_password()  # signs in through a portal session or after a password reset
        user.save(update_fields=["password"])
    return user


def _settings_apply(*, account: Account, values: dict[str, Any], actor: Actor, ip: str | None) -> Account:
    """Change through the account settings service (its URL checks apply) only what differs."""
    changes: dict[str, Any] = {}
    for name in SETTINGS_FIELDS:
        if name in values and values[name] != getattr(account, name):
            changes[name] = values[name]
    if not changes:
        return account
    try:
        return account_settings_update(account=account, actor=actor, ip=ip, **changes)
    except BillingError as exc:
        field = next((name for name in changes if str(exc).startswith(name)), None)
        if field is None and "currency" in str(exc):
            field = "display_currency"
        raise _refuse(field or "non_field_errors", str(exc)) from None


def _owner_set(*, account: Account, email: str, actor: Actor, ip: str | None) -> None:
    """Make the user with this email the customer's owner, in place of the previous owner."""
    previous = customer_owner(account=account)
    if previous is not None and previous.username == email:
        return
    user = _owner_user(email)
    membership = Membership.objects.filter(account=account, user=user).first()
    if membership is None:
        member_add(account=account, user=user, role=Membership.Role.OWNER, actor=actor)
    elif membership.role != Membership.Role.OWNER:
        Membership.objects.filter(pk=membership.pk).update(role=Membership.Role.OWNER)
        audit_record(action="member_role_changed", account=account, object_type="Membership", object_key=str(user.pk),
                     actor=actor, ip=ip, before={"role": membership.role}, after={"role": Membership.Role.OWNER})  # fmt: skip
    if previous is not None:
        Membership.objects.filter(account=account, user=previous).delete()
        audit_record(action="member_removed", account=account, object_type="Membership", object_key=str(previous.pk),
                     actor=actor, ip=ip, before={"role": Membership.Role.OWNER}, after={"replaced_by": email})  # fmt: skip


def _customer_create(
    *, external_id: str, values: dict[str, Any], actor: Actor, ip: str | None, as_of: datetime
) -> Account:
    if not values.get("name"):
        raise _refuse("name", "required to create a customer")
    try:
        account, _ = account_create(
            name=values["name"], plan_code=values.get("plan") or settings.CUSTOMERS_DEFAULT_PLAN,
            owner_email=values.get("email"), display_currency=values.get("display_currency", "USD"), actor=actor,
            as_of=as_of, external_id=external_id, metadata=values.get("metadata") or {}, issue_key=False,
        )  # fmt: skip
    except UnknownDisplayCurrency as exc:  # the one account_create refusal a checked body can still meet
        raise _refuse("display_currency", str(exc)) from None
    return _settings_apply(account=account, values=values, actor=actor, ip=ip)


def _customer_update(
    *, account: Account, values: dict[str, Any], actor: Actor, ip: str | None, as_of: datetime
) -> None:
    _settings_apply(account=account, values=values, actor=actor, ip=ip)
    if "metadata" in values and values["metadata"] != account.metadata:
        before = account.metadata
        Account.objects.filter(pk=account.pk).update(metadata=values["metadata"])
        audit_record(action="customer_metadata_changed", account=account, object_type="Account", object_key=str(account.pk),
                     actor=actor, ip=ip, before={"metadata": before}, after={"metadata": values["metadata"]})  # fmt: skip
    if values.get("plan"):
        plan = plan_by_code(values["plan"])
        if account.subscription.plan_id != plan.pk:
            subscription_change_plan(account=account, plan=plan, apply_now=True, as_of=as_of, actor=actor, ip=ip)
    if values.get("email"):
        _owner_set(account=account, email=values["email"], actor=actor, ip=ip)


@transaction.atomic
def customer_upsert(
    *, external_id: str, fields: dict[str, Any], actor: Actor = None, ip: str | None = None,
    as_of: datetime | None = None,
) -> tuple[Account, bool]:  # fmt: skip
    """Create the customer `external_id`, or bring the one that exists to the fields given (the others stay).

    Answers (account, created). `name` is required to create; the same fields twice change nothing. Two creates of
    one id at once make one customer: the second insert fails on the unique external_id and becomes an update.
    """
    external_id = external_id_check(external_id)
    values = customer_fields_check(fields)
    as_of = as_of or timezone.now()
    account = Account.objects.filter(external_id=external_id).first()
    if account is None:
        try:
            with transaction.atomic():
                return _customer_create(external_id=external_id, values=values, actor=actor, ip=ip, as_of=as_of), True
        except IntegrityError:
            account = Account.objects.filter(external_id=external_id).first()
            if account is None:
                raise
    _customer_update(account=account, values=values, actor=actor, ip=ip, as_of=as_of)
    return Account.objects.get(pk=account.pk), False


@transaction.atomic
def customer_status_set(*, account: Account, status: str, actor: Actor = None, ip: str | None = None) -> Account:
    """Suspend or reactivate a customer (audited); a suspended customer reads its balance but cannot spend."""
    return account_set_status(account=account, status=status, actor=actor, ip=ip)


@transaction.atomic
def customer_plan_change(
    *, account: Account, plan_code: str, when: str, actor: Actor = None, ip: str | None = None,
    as_of: datetime | None = None,
) -> Account:  # fmt: skip
    """Move the customer to another plan `now` (the open period takes its terms) or from the `next_period`."""
    if when not in ("now", "next_period"):
        raise _refuse("when", '"now" or "next_period"')
    plan = plan_by_code(plan_code)
    subscription_change_plan(account=account, plan=plan, apply_now=when == "now", as_of=as_of, actor=actor, ip=ip)
    return Account.objects.get(pk=account.pk)


def grant_reference(*, owner: str, idempotency_key: str) -> str:
    """The ledger reference of an API grant: one grant per key ever, even after the key's answer is purged."""
    return "api:" + hashlib.sha256(f"{owner}\0{idempotency_key}".encode()).hexdigest()


@transaction.atomic
def customer_credits_grant(
    *, account: Account, credits: object, reason: str, reference: str, expires_at: datetime | None = None,
    actor: Actor = None, ip: str | None = None, now: datetime | None = None,
) -> Posting:  # fmt: skip
    """Grant credits to a customer, once per `reference`; with `expires_at` the unspent part leaves then."""
    try:
        amount = to_decimal(credits)
    except MoneyError as exc:
        raise _refuse("credits", str(exc)) from None
    if amount <= 0:
        raise _refuse("credits", "must be > 0")
    if amount > Decimal(10) ** 15:
        raise _refuse("credits", "at most 10^15 in one grant")
    if not isinstance(reason, str) or not reason.strip() or not text_is_clean(reason) or len(reason) > 500:
        raise _refuse("reason", "required: 1 to 500 characters")
    if expires_at is not None and expires_at <= (now or timezone.now()):
        raise _refuse("expires_at", "must be in the future")
    posting = wallet_grant(
        account=account, credits=amount, reason=reason.strip(), actor=actor, ip=ip, reference=reference,
        expires_at=expires_at,
    )  # fmt: skip
    if not posting.created and posting.entry.credits != amount:
        raise IdempotencyConflict("this Idempotency-Key was used for another grant; use a new key")
    if posting.created and getattr(actor, "is_authenticated", False) is not True:
        audit_record(action="credits_granted", account=account, object_type="LedgerEntry",
                     object_key=str(posting.entry.pk), actor=actor, ip=ip,
                     after={"credits": amount, "reason": reason.strip(), "expires_at": expires_at})  # fmt: skip
    return posting
