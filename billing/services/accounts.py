"""Accounts and their members."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.errors import (
    AlreadyMember,
    InvalidAccountName,
    InvalidAccountStatus,
    InvalidAmount,
    InvalidMemberRole,
    LastOwner,
    UnknownAccountSetting,
    UnknownDisplayCurrency,
    WebhookUrlRefused,
)
from billing.models import Account, Membership, Wallet
from billing.services.api_keys import api_key_issue
from billing.services.audit import Actor, audit_record
from billing.services.periods import plan_by_code, plan_terms_at, subscription_start
from billing.services.wallet import wallet_grant
from core.egress import EgressRefused, egress_url_check
from pricing.money import MINOR_UNITS, MoneyError, to_decimal
from pricing.plans import debits_wallet
from pricing.selectors import plan_terms_version


@transaction.atomic
def account_create(
    *,
    name: str,
    plan_code: str,
    owner_email: str | None = None,
    owner_password: str | None = None,
    credits: object = None,
    display_currency: str = "USD",
    actor: Actor = None,
    as_of: datetime | None = None,
    external_id: str | None = None,
    metadata: dict[str, object] | None = None,
    issue_key: bool = True,
) -> tuple[Account, str]:
    """A new account on a plan, with its wallet, subscription, first API key, owner and opening credits.

    Returns the account and the API key in clear (shown once; "" with `issue_key=False`). Nothing is written when
    any part is refused. `external_id` is the reseller's own id of a customer: unique, so a second create of the
    same id fails on the insert (IntegrityError) and writes nothing.
    """
    as_of = as_of or timezone.now()
    if not name.strip():
        raise InvalidAccountName("name: required")
    plan = plan_by_code(plan_code)
    opening: Decimal | None = None
    if credits is not None:
        try:
            opening = to_decimal(credits)
        except MoneyError as exc:
            raise InvalidAmount(f"credits: {exc}") from None
        if opening <= 0:
            raise InvalidAmount(f"credits must be > 0, got {opening}")
    if display_currency not in MINOR_UNITS or display_currency == "CREDITS":
        raise UnknownDisplayCurrency(f"unknown display currency {display_currency!r}")
    # the low-balance warning is on from the start where the plan spends credits (a quota plan never does); the
    # owner moves it (or sets 0 to turn it off, or a line of their own on any plan)
    spends_credits = debits_wallet(plan_terms_version(plan_terms_at(plan=plan, at=as_of)))
    account = Account.objects.create(
        name=name.strip(), display_currency=display_currency, alert_webhook_secret=secrets.token_hex(32),
        external_id=external_id, metadata=metadata or {},
        low_balance_threshold=settings.LOW_BALANCE_THRESHOLD_DEFAULT if spends_credits else Decimal(0),
    )  # fmt: skip
    Wallet.objects.create(account=account)
    subscription_start(account=account, plan=plan, as_of=as_of)
    if owner_email:
        user_model = get_user_model()
        owner, created = user_model.objects.get_or_create(username=owner_email, defaults={"email": owner_email})
        if created and not owner_password:
            owner.set_unusable_password()  # signs in after a password reset, never with an empty one
            owner.save(update_fields=["password"])
        elif owner_password and (created or not owner.has_usable_password()):
            owner.set_password(owner_password)
            owner.save(update_fields=["password"])
        member_add(account=account, user=owner, role=Membership.Role.OWNER, actor=actor)
    if opening is not None:
        wallet_grant(
            account=account, credits=opening, reason="opening credits", actor=actor, reference=f"opening:{account.pk}"
        )
    raw_key = ""
    if issue_key:
        _, raw_key = api_key_issue(account=account, name="default", actor=actor)
    audit_record(action="account_created", account=account, object_type="Account", object_key=str(account.pk),
                 actor=actor, after={"name": account.name, "plan": plan.code, "external_id": external_id})  # fmt: skip
    return account, raw_key


@transaction.atomic
def member_add(*, account: Account, user: User, role: str, actor: Actor = None) -> Membership:
    if role not in Membership.Role.values:
        raise InvalidMemberRole(f"role must be one of {', '.join(Membership.Role.values)}")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(account=account, user=user, role=role)
    except IntegrityError:
        raise AlreadyMember(f"{user} is already a member of account {account.pk}") from None
    audit_record(action="member_added", account=account, object_type="Membership", object_key=str(user.pk),
                 actor=actor, after={"role": role})  # fmt: skip
    return membership


@transaction.atomic
def account_set_status(*, account: Account, status: str, actor: Actor = None, ip: str | None = None) -> Account:
    """Suspend or reactivate. A suspended account can read its balance and invoices but not spend."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if status not in Account.Status.values:
        raise InvalidAccountStatus(f"status must be one of {', '.join(Account.Status.values)}")
    if locked.status != status:
        before = locked.status
        locked.status = status
        locked.save(update_fields=["status"])
        audit_record(action="account_suspended" if status == Account.Status.SUSPENDED else "account_reactivated",
                     account=locked, object_type="Account", object_key=str(locked.pk), actor=actor, ip=ip,
                     before={"status": before}, after={"status": status})  # fmt: skip
    return locked


ACCOUNT_SETTINGS = ("name", "display_currency", "low_balance_threshold", "alert_webhook_url")


@transaction.atomic
def account_settings_update(
    *, account: Account, actor: Actor = None, ip: str | None = None, rotate_webhook_secret: bool = False,
    **changes: object,
) -> Account:  # fmt: skip
    """Change an account's name, display currency, low-balance threshold or alert webhook URL; audited.

    `rotate_webhook_secret` makes a new signing secret for the alert webhook (receivers must update theirs). The
    webhook URL must pass the egress rule (config/egress.py: https to a public address).
    """
    unknown = set(changes) - set(ACCOUNT_SETTINGS)
    if unknown:
        raise UnknownAccountSetting(f"cannot change {', '.join(sorted(unknown))}")
    webhook_url = str(changes.get("alert_webhook_url") or "").strip()
    if webhook_url:  # checked before the lock: it may wait on DNS
        try:
            webhook_url = egress_url_check(webhook_url)
        except EgressRefused as exc:
            raise WebhookUrlRefused(f"alert_webhook_url: {exc} (or leave it empty to turn webhooks off)") from None
    locked = Account.objects.select_for_update().get(pk=account.pk)
    before = {name: getattr(locked, name) for name in changes}
    if "name" in changes:
        name = str(changes["name"] or "").strip()
        if not name or len(name) > 200:
            raise InvalidAccountName("name: 1 to 200 characters")
        locked.name = name
    if "display_currency" in changes:
        currency = str(changes["display_currency"] or "").upper()
        if currency not in MINOR_UNITS or currency == "CREDITS":
            raise UnknownDisplayCurrency(f"unknown display currency {currency!r}")
        locked.display_currency = currency
    if "low_balance_threshold" in changes:
        try:
            threshold = to_decimal(changes["low_balance_threshold"])
        except MoneyError as exc:
            raise InvalidAmount(f"low_balance_threshold: {exc}") from None
        if threshold < 0:
            raise InvalidAmount("low_balance_threshold must be >= 0 (0 turns the warning off)")
        locked.low_balance_threshold = threshold
    if "alert_webhook_url" in changes:
        locked.alert_webhook_url = webhook_url
    if rotate_webhook_secret or not locked.alert_webhook_secret:
        locked.alert_webhook_secret = secrets.token_hex(32)
    locked.full_clean(exclude=["members"])
    locked.save()
    after = {name: getattr(locked, name) for name in changes}
    if rotate_webhook_secret:
        after["webhook_secret_rotated"] = True
    if before != after or rotate_webhook_secret:
        audit_record(action="account_settings_changed", account=locked, object_type="Account", object_key=str(locked.pk),
                     actor=actor, ip=ip, before=before, after=after)  # fmt: skip
    return locked


@transaction.atomic
def member_remove(*, membership: Membership, actor: Actor = None, ip: str | None = None) -> None:
    """Remove a member; the last owner cannot be removed."""
    # the account first (lock order), which also makes two removals of the account's owners run one at a time
    Account.objects.select_for_update().get(pk=membership.account_id)
    locked = Membership.objects.select_for_update(of=("self",)).select_related("account", "user").get(pk=membership.pk)
    if (
        locked.role == Membership.Role.OWNER
        and not Membership.objects.filter(account=locked.account, role=Membership.Role.OWNER)
        .exclude(pk=locked.pk)
        .exists()
    ):
        raise LastOwner("an account keeps at least one owner")
    audit_record(action="member_removed", account=locked.account, object_type="Membership", object_key=str(locked.user_id),
                 actor=actor, ip=ip, before={"role": locked.role})  # fmt: skip
    locked.delete()
