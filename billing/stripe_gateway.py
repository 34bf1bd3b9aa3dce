"""The one module that talks to Stripe (and the only one that imports `stripe`).

- The API version is pinned (`stripe_conf.PINNED_API_VERSION`, overridable by `STRIPE_API_VERSION`); the base
  address comes from `STRIPE_API_BASE` (a local Stripe test server), else Stripe's own.
- Every call that creates or changes something carries an idempotency key the caller builds from local ids
  (`topup:<id>`, `overage-item:<invoice id>`, ...), never a random one, so a retried job sends the same key and
  Stripe answers with the first result. The `stripe` library's own network retries are off: retries belong to
  Celery, with the same keys.
- Amounts go in as `Money` and leave as integer minor units through `Money.to_minor_units`, the one cents helper.
- Errors come out typed: `CardDeclined` (the customer's card said no), `StripeTransientError` (network, rate limit,
  Stripe 5xx, lock conflict: retried with backoff), `StripePermanentError` (a request Stripe refuses: fix, don't
  retry), `StripeNotConfigured`.
- Results are plain dicts (`StripeObject.to_dict()`), so no Stripe type leaks into the services.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import stripe

from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_settings
from pricing.money import Money

# Tests subclass this to record requests (see tests/billing/stripe_support.py); nothing else needs `stripe`.
HTTPClientBase = stripe.HTTPClient


class StripeGatewayError(Exception):
    """A Stripe call that did not do what was asked."""

    code = "stripe_error"

    def __init__(self, message: str, *, stripe_code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.stripe_code = stripe_code
        self.http_status = http_status


class StripeNotConfigured(StripeGatewayError):
    code = "stripe_not_configured"


class CardDeclined(StripeGatewayError):
    """The card was declined (or needs the customer present): tell the customer, do not retry blindly."""

    code = "card_declined"

    def __init__(self, message: str, *, stripe_code: str | None = None, decline_code: str | None = None,
                 http_status: int | None = None) -> None:  # fmt: skip
        super().__init__(message, stripe_code=stripe_code, http_status=http_status)
        self.decline_code = decline_code


class StripeTransientError(StripeGatewayError):
    """Network trouble, a rate limit, a Stripe-side error or a lock conflict: the same call may work later."""

    code = "stripe_unavailable"


class StripePermanentError(StripeGatewayError):
    """Stripe refused the request (bad parameters, unknown object, bad key, key reused with other parameters)."""

    code = "stripe_refused"


class WebhookSignatureInvalid(Exception):
    """A webhook whose signature is missing, wrong or outside the timestamp tolerance."""


_http_client_override: Any = None


@contextmanager
def http_client_override(client: Any) -> Iterator[None]:
    """Route every Stripe request through `client` (a `HTTPClientBase`) for the duration: tests use it."""
    global _http_client_override
    previous = _http_client_override
    _http_client_override = client
    _client_cached.cache_clear()
    try:
        yield
    finally:
        _http_client_override = previous
        _client_cached.cache_clear()


@lru_cache(maxsize=8)
def _client_cached(secret_key: str, api_base: str, api_version: str, timeout: int, override: Any) -> Any:
    http_client = override if override is not None else stripe.RequestsClient(timeout=timeout)
    return stripe.StripeClient(
        secret_key,
        stripe_version=api_version,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=0,
        http_client=http_client,
    )


def stripe_client() -> stripe.StripeClient:
    """The configured client; raises StripeNotConfigured without a secret key."""
    conf = stripe_settings()
    if not conf.enabled:
        raise StripeNotConfigured(NOT_CONFIGURED_MESSAGE)
    return _client_cached(
        conf.secret_key, conf.api_base, conf.api_version, conf.http_timeout_seconds, _http_client_override
    )


def minor_units(amount: Money) -> tuple[int, str]:
    """(integer minor units, lowercase ISO currency) for Stripe, through the one cents helper."""
    return amount.to_minor_units(), amount.currency.lower()


def _plain(result: Any) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def _error(exc: stripe.StripeError) -> StripeGatewayError:
    message = exc.user_message or str(exc) or type(exc).__name__
    status = exc.http_status
    if isinstance(exc, stripe.CardError):
        decline_code = getattr(exc.error, "decline_code", None) if exc.error is not None else None
        return CardDeclined(message, stripe_code=exc.code, decline_code=decline_code, http_status=status)
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return StripeTransientError(message, stripe_code=exc.code, http_status=status)
    if isinstance(exc, stripe.IdempotencyError | stripe.InvalidRequestError | stripe.AuthenticationError):
        return StripePermanentError(message, stripe_code=exc.code, http_status=status)
    if isinstance(exc, stripe.PermissionError):
        return StripePermanentError(message, stripe_code=exc.code, http_status=status)
    if status is None or status >= 500 or status == 409:
        return StripeTransientError(message, stripe_code=exc.code, http_status=status)
    return StripePermanentError(message, stripe_code=exc.code, http_status=status)


def _call(send: Callable[[stripe.StripeClient], Any]) -> dict[str, Any]:
    client = stripe_client()
    try:
        return _plain(send(client))
    except stripe.StripeError as exc:
        raise _error(exc) from exc


def _options(idempotency_key: str | None) -> dict[str, Any]:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


# --- customers ---------------------------------------------------------------------------------------------------


def customer_create(*, name: str, email: str, metadata: Mapping[str, str], idempotency_key: str) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "metadata": dict(metadata)}
    if email:
        params["email"] = email
    return _call(lambda c: c.v1.customers.create(params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def customer_update(*, customer_id: str, name: str, email: str, idempotency_key: str) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "email": email}
    return _call(lambda c: c.v1.customers.update(customer_id, params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def payment_method_attach(*, payment_method_id: str, customer_id: str, idempotency_key: str) -> dict[str, Any]:
    params = {"customer": customer_id}
    return _call(
        lambda c: c.v1.payment_methods.attach(payment_method_id, params=params, options=_options(idempotency_key))  # type: ignore[arg-type]
    )


# --- Checkout ----------------------------------------------------------------------------------------------------


def checkout_session_create_payment(
    *, customer_id: str, amount: Money, product_name: str, metadata: Mapping[str, str], client_reference_id: str,
    success_url: str, cancel_url: str, save_payment_method: bool, idempotency_key: str,
) -> dict[str, Any]:  # fmt: skip
    """A one-off card payment page (payment mode) for `amount`."""
    cents, currency = minor_units(amount)
    params: dict[str, Any] = {
        "mode": "payment",
        "customer": customer_id,
        "client_reference_id": client_reference_id,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": currency, "unit_amount": cents, "product_data": {"name": product_name}},
            }
        ],
        "metadata": dict(metadata),
        "payment_intent_data": {"metadata": dict(metadata)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if save_payment_method:
        params["payment_intent_data"]["setup_future_usage"] = "off_session"
    return _call(lambda c: c.v1.checkout.sessions.create(params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def checkout_session_create_subscription(
    *, customer_id: str, price_id: str, metadata: Mapping[str, str], success_url: str, cancel_url: str,
    idempotency_key: str,
) -> dict[str, Any]:  # fmt: skip
    """A subscription sign-up page (subscription mode) for one price."""
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": metadata.get("account_id", ""),
        "line_items": [{"price": price_id, "quantity": 1}],
        "metadata": dict(metadata),
        "subscription_data": {"metadata": dict(metadata)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    return _call(lambda c: c.v1.checkout.sessions.create(params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


# --- PaymentIntents (auto-recharge) ------------------------------------------------------------------------------


def payment_intent_create_off_session(
    *, customer_id: str, payment_method_id: str, amount: Money, metadata: Mapping[str, str], idempotency_key: str
) -> dict[str, Any]:
    """Charge a saved card with the customer away: confirmed at once; a decline raises CardDeclined."""
    cents, currency = minor_units(amount)
    params: dict[str, Any] = {
        "amount": cents,
        "currency": currency,
        "customer": customer_id,
        "payment_method": payment_method_id,
        "off_session": True,
        "confirm": True,
        "metadata": dict(metadata),
    }
    return _call(lambda c: c.v1.payment_intents.create(params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def payment_intent_retrieve(*, payment_intent_id: str) -> dict[str, Any]:
    return _call(lambda c: c.v1.payment_intents.retrieve(payment_intent_id))


# --- subscriptions -----------------------------------------------------------------------------------------------


def subscription_retrieve(*, subscription_id: str) -> dict[str, Any]:
    return _call(lambda c: c.v1.subscriptions.retrieve(subscription_id))


def subscription_change_price(
    *, subscription_id: str, item_id: str, price_id: str, idempotency_key: str
) -> dict[str, Any]:
    """Move the subscription's one item to another price now, prorated."""
    params: dict[str, Any] = {
        "items": [{"id": item_id, "price": price_id}],
        "proration_behavior": "create_prorations",
        "cancel_at_period_end": False,
    }
    return _call(lambda c: c.v1.subscriptions.update(subscription_id, params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def subscription_cancel_at_period_end(*, subscription_id: str, cancel: bool, idempotency_key: str) -> dict[str, Any]:
    params: dict[str, Any] = {"cancel_at_period_end": cancel}
    return _call(lambda c: c.v1.subscriptions.update(subscription_id, params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def subscription_cancel_now(*, subscription_id: str) -> dict[str, Any]:
    """DELETE: idempotent by nature (a canceled subscription stays canceled)."""
    return _call(lambda c: c.v1.subscriptions.cancel(subscription_id))


# --- invoices ----------------------------------------------------------------------------------------------------


def invoice_item_create(
    *, customer_id: str, amount: Money, description: str, metadata: Mapping[str, str], idempotency_key: str,
    subscription_id: str | None = None, period: tuple[int, int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A pending invoice item: it waits on the customer (or the subscription) until an invoice takes it."""
    cents, currency = minor_units(amount)
    params: dict[str, Any] = {
        "customer": customer_id,
        "amount": cents,
        "currency": currency,
        "description": description,
        "metadata": dict(metadata),
    }
    if subscription_id:
        params["subscription"] = subscription_id
    if period is not None:
        params["period"] = {"start": period[0], "end": period[1]}
    return _call(lambda c: c.v1.invoice_items.create(params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def invoice_create(
    *, customer_id: str, description: str, metadata: Mapping[str, str], idempotency_key: str
) -> dict[str, Any]:
    """A draft invoice that takes the customer's pending invoice items."""
    params: dict[str, Any] = {
        "customer": customer_id,
        "description": description,
        "metadata": dict(metadata),
        "pending_invoice_items_behavior": "include",
    }
    return _call(lambda c: c.v1.invoices.create(params=params, options=_options(idempotency_key)))  # type: ignore[arg-type]


def invoice_finalize(*, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
    """Draft -> open, with automatic collection on (Stripe retries the payment on its own schedule)."""
    params: dict[str, Any] = {"auto_advance": True}
    return _call(
        lambda c: c.v1.invoices.finalize_invoice(invoice_id, params=params, options=_options(idempotency_key))  # type: ignore[arg-type]
    )


def invoice_pay(*, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
    """Attempt payment now with the customer's default payment method; a decline raises CardDeclined."""
    return _call(lambda c: c.v1.invoices.pay(invoice_id, options=_options(idempotency_key)))  # type: ignore[arg-type]


def invoice_retrieve(*, invoice_id: str) -> dict[str, Any]:
    return _call(lambda c: c.v1.invoices.retrieve(invoice_id))


# --- webhooks ----------------------------------------------------------------------------------------------------


def webhook_verify(*, payload: bytes, signature_header: str | None, secret: str, tolerance_seconds: int,
                   now: float | None = None) -> None:  # fmt: skip
    """Check the `Stripe-Signature` header (HMAC-SHA256 over "<t>.<body>") and that `t` is within the tolerance
    of now, in either direction. Raises WebhookSignatureInvalid."""
    if not signature_header:
        raise WebhookSignatureInvalid("missing Stripe-Signature header")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        # Stripe signs UTF-8 JSON; the library would fail decoding it, so no signature can match
        raise WebhookSignatureInvalid("the body is not UTF-8, so it cannot carry a valid signature") from None
    try:
        # the library checks the signature; the timestamp window (past and future) is checked below
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance=None)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureInvalid(str(exc) or "bad signature") from None
    timestamps = [part.split("=", 1)[1] for part in signature_header.split(",") if part.strip().startswith("t=")]
    try:
        signed_at = int(timestamps[0])
    except (IndexError, ValueError):
        raise WebhookSignatureInvalid("no timestamp in Stripe-Signature") from None
    moment = time.time() if now is None else now
    if abs(moment - signed_at) > tolerance_seconds:
        raise WebhookSignatureInvalid(f"timestamp {signed_at} is outside the {tolerance_seconds}s tolerance")


def webhook_signature_header(*, payload: bytes, secret: str, timestamp: int) -> str:
    """The header Stripe would send for `payload` at `timestamp` (for tests and local replays)."""
    return stripe.WebhookSignature.generate_signature_header(payload.decode("utf-8"), secret, timestamp)
