"""Portal sessions: a one-time link that signs a customer's owner into the dashboard (as Stripe's portal does).

The token is random, shown once in the URL, kept as a SHA-256 hash; it works once, for PORTAL_SESSION_TTL_SECONDS.
Redeeming it is one conditional update (unused and unexpired -> used), so two clicks race to one sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.errors import InvalidCustomer, PortalUnavailable
from billing.models import Account, Membership, PortalSession, ServerKey
from billing.selectors import customer_owner
from billing.services.audit import Actor, audit_record

PORTAL_PATH = "/portal/"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def return_url_check(value: object) -> str:
    """An absolute http(s) URL without credentials, on an allowed host when PORTAL_RETURN_URL_HOSTS lists some."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 2000 or not value.isascii() or not value.isprintable():
        raise InvalidCustomer("return_url", "an absolute http(s) URL of at most 2000 ASCII characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise InvalidCustomer("return_url", "an absolute http(s) URL") from None
    if parts.scheme not in ("https", "http") or not host or " " in value:
        raise InvalidCustomer("return_url", "an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidCustomer("return_url", "must not carry a user name or password")
    allowed = [h.lower() for h in settings.PORTAL_RETURN_URL_HOSTS]
    if allowed and host.lower() not in allowed:
        raise InvalidCustomer("return_url", f"the host must be one of {', '.join(allowed)} (PORTAL_RETURN_URL_HOSTS)")
    return value


@dataclass(frozen=True)
class PortalLink:
    session: PortalSession
    token: str

    @property
    def path(self) -> str:
        return f"{PORTAL_PATH}{self.token}"


@transaction.atomic
def portal_session_create(
    *, account: Account, return_url: object = None, server_key: ServerKey | None = None, actor: Actor = None,
    ip: str | None = None, now: datetime | None = None,
) -> PortalLink:  # fmt: skip
    """A link that signs the customer's owner into the dashboard once, within a few minutes."""
    now = now or timezone.now()
    url = return_url_check(return_url)
    owner = customer_owner(account=account)
    if owner is None:
        raise PortalUnavailable("the customer has no owner to sign in: set its email first (PUT with email)")
    if owner.is_staff or owner.is_superuser or not owner.is_active:
        raise PortalUnavailable("the customer's owner cannot be signed in by a portal link (staff or inactive user)")
    token = secrets.token_urlsafe(32)
    session = PortalSession.objects.create(
        account=account, user=owner, token_hash=_hash(token), return_url=url, created_by_key=server_key,
        created_at=now, expires_at=now + timedelta(seconds=settings.PORTAL_SESSION_TTL_SECONDS),
    )  # fmt: skip
    audit_record(action="portal_session_created", account=account, object_type="PortalSession",
                 object_key=str(session.pk), actor=actor, ip=ip, after={"user": owner.username})  # fmt: skip
    return PortalLink(session=session, token=token)


@transaction.atomic
def portal_session_redeem(*, token: str, ip: str | None = None, now: datetime | None = None) -> PortalSession | None:
    """The session this token opens, marked used; None when it is unknown, used, expired or no longer valid."""
    now = now or timezone.now()
    if not token or len(token) > 200:
        return None
    token_hash = _hash(token)
    claimed = PortalSession.objects.filter(token_hash=token_hash, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now
    )
    if claimed != 1:
        return None
    session = PortalSession.objects.select_related("account", "user").get(token_hash=token_hash)
    user = session.user
    still_owner = Membership.objects.filter(account=session.account, user=user, role=Membership.Role.OWNER).exists()
    if user.is_staff or user.is_superuser or not user.is_active or not still_owner:
        return None
    audit_record(action="portal_session_used", account=session.account, object_type="PortalSession",
                 object_key=str(session.pk), ip=ip, after={"user": user.username})  # fmt: skip
    return session


@transaction.atomic
def portal_sessions_purge(*, as_of: datetime) -> int:
    """Delete portal sessions that expired over a day ago (used or not)."""
    deleted, _ = PortalSession.objects.filter(expires_at__lt=as_of - timedelta(days=1)).delete()
    return deleted
