"""`Authorization: Bearer <key>` for account endpoints: an account key (`tl_...`) acts for its account; a server
key (`tls_...`) acts for the customer named by the `TokenLedger-Customer` header, within its scopes."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from billing.errors import InvalidCustomer
from billing.models import Account, ApiKey, ServerKey
from billing.selectors import customer_by_external_id, customers_by_external_id
from billing.services.api_keys import api_key_authenticate
from billing.services.customers import external_id_check
from billing.services.server_keys import SERVER_KEY_PREFIX, server_key_authenticate
from core.api_errors import ApiError

CUSTOMER_HEADER = "TokenLedger-Customer"


class AccountPrincipal:
    """The caller behind an API key: authenticated, not a Django user, acting for one account."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self._account: Account | None = None
        self.pk = None
        self.id = None

    @property
    def account(self) -> Account:
        """The key's account, read once per request when first needed (authentication itself reads no row)."""
        if self._account is None:
            self._account = Account.objects.get(pk=self.key.account_id)
        return self._account

    @property
    def account_ref(self) -> Account:
        """The account by id alone, for the hot endpoints that read its rows themselves (a field read loads it)."""
        if self._account is not None:
            return self._account
        return Account.from_db(DEFAULT_DB_ALIAS, ["id"], [self.key.account_id])

    def __str__(self) -> str:
        return f"api key {self.key.prefix} of account {self.account.pk}"


class ServerKeyPrincipal(AccountPrincipal):
    """A server key: the reseller's backend. It acts for the customer named by the header (or the path)."""

    def __init__(self, server_key: ServerKey, customer_header: str | None) -> None:
        self.server_key = server_key
        self.customer_header = customer_header
        self._account = None
        self.pk = None
        self.id = None

    @property
    def account(self) -> Account:
        """The customer this request acts for: 400 when no customer is named, 404 when it is unknown."""
        if self._account is None:
            if self.customer_header is None:
                raise ApiError(
                    "customer_required",
                    f"A server key acts for a customer: name it with the {CUSTOMER_HEADER} header (its external id).",
                    fields={CUSTOMER_HEADER: ["required with a server key"]},
                )
            try:
                external_id = external_id_check(self.customer_header)
            except InvalidCustomer:
                raise ApiError("invalid", f"{CUSTOMER_HEADER}: 1 to 128 printable characters",
                               fields={CUSTOMER_HEADER: ["1 to 128 printable characters"]}) from None  # fmt: skip
            self._account = customer_by_external_id(external_id=external_id)
        return self._account

    @property
    def account_ref(self) -> Account:
        return self.account

    def act_for(self, account: Account) -> None:
        """The customer named by the request's path (the customers API)."""
        self._account = account

    @property
    def owner(self) -> str:
        """Who sends an Idempotency-Key: the key, so two backends' keys never meet."""
        return f"server-key:{self.server_key.pk}"

    @property
    def audit_label(self) -> str:
        return f"server key tls_{self.server_key.prefix} ({self.server_key.name})"

    def __str__(self) -> str:
        return self.audit_label


def _header_text(raw: str | None) -> str | None:
    """A header as the client sent it: WSGI hands it over as latin-1; UTF-8 bytes are read back as UTF-8."""
    if raw is None:
        return None
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AccountPrincipal, ApiKey | ServerKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        raw_key = raw_key.strip()
        if raw_key.startswith(SERVER_KEY_PREFIX):
            server_key = server_key_authenticate(raw_key)
            if server_key is None:
                raise exceptions.AuthenticationFailed("The server key is unknown or revoked.")
            customer = _header_text(request.META.get("HTTP_TOKENLEDGER_CUSTOMER"))
            return ServerKeyPrincipal(server_key, customer), server_key
        key = api_key_authenticate(raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown or revoked.")
        return AccountPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "billing.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An account API key (tl_...), or a server key (tls_...) with the customer named by the "
                f"{CUSTOMER_HEADER} header (its external id)."
            ),
        }


class ServerKeyScope(BasePermission):
    """A server key needs the view's scope: `server_key_scope` on the view, else `read` to read and the view's
    `server_key_write_scope` (default `usage`) to write. Account keys pass (they act only for their own account)."""

    message = "This server key does not have the scope this endpoint needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, ServerKeyPrincipal):
            return True
        scope = getattr(view, "server_key_scope", None)
        if scope is None:
            reading = request.method in ("GET", "HEAD", "OPTIONS")
            scope = "read" if reading else getattr(view, "server_key_write_scope", "usage")
        if principal.server_key.allows(scope):
            return True
        self.message = f"This server key does not have the {scope!r} scope this endpoint needs."
        return False


class ServerKeyOnly(BasePermission):
    """Only a server key (the customers API): an account key, a session or Basic answers 403."""

    message = "The customers API takes a server key (Authorization: Bearer tls_...)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, ServerKeyPrincipal)


def request_account(request: Request) -> Account:
    """The account a key request acts for: the account key's, or the customer a server key names."""
    principal = request.user
    if not isinstance(principal, AccountPrincipal):
        raise exceptions.NotAuthenticated("An account API key is required (Authorization: Bearer tl_...).")
    return principal.account


def request_account_ref(request: Request) -> Account:
    """As request_account, without reading the account row for an account key (see AccountPrincipal.account_ref)."""
    principal = request.user
    if not isinstance(principal, AccountPrincipal):
        raise exceptions.NotAuthenticated("An account API key is required (Authorization: Bearer tl_...).")
    return principal.account_ref


def request_api_key_id(request: Request) -> int | None:
    """The account API key a request came with (its usage events record it), or None for a server key."""
    principal = request.user
    if isinstance(principal, AccountPrincipal) and not isinstance(principal, ServerKeyPrincipal):
        return principal.key.pk
    return None


def request_event_accounts(request: Request, external_ids: set[str]) -> tuple[Account | None, dict[str, Account], bool]:
    """For a usage batch: (the default account, the customers the events name by external id, own_only).

    An account key: its account, and events may name only it. A server key: the header's customer (None without
    the header; 404 when it is unknown), and the named customers, looked up in one query.
    """
    principal = request.user
    if isinstance(principal, ServerKeyPrincipal):
        default = principal.account if principal.customer_header is not None else None
        return default, customers_by_external_id(external_ids=external_ids), False
    return request_account_ref(request), {}, True
