"""`Authorization: Bearer <api key>` for account endpoints."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from billing.models import Account, ApiKey
from billing.services.api_keys import api_key_authenticate


class AccountPrincipal:
    """The caller behind an API key: authenticated, not a Django user, acting for one account."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.account: Account = key.account
        self.pk = None
        self.id = None

    def __str__(self) -> str:
        return f"api key {self.key.prefix} of account {self.account.pk}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AccountPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        key = api_key_authenticate(raw_key.strip())
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown or revoked.")
        return AccountPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "billing.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An account API key: tl_..."}


def request_account(request: Request) -> Account:
    """The account an API-key request acts for."""
    principal = request.user
    if not isinstance(principal, AccountPrincipal):
        raise exceptions.NotAuthenticated("An account API key is required (Authorization: Bearer tl_...).")
    return principal.account
