"""`POST /api/stripe/webhook`: verify, store, answer. Processing happens in a task queued when the insert commits.

A plain Django view: Stripe signs the raw body, so nothing may parse it first; no CSRF (Stripe has no token; the
signature is the authentication); outside the request transaction, so the stored event commits before the task that
processes it is queued, and a failure in processing can never undo the receipt.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_gateway as gateway
from billing.services.webhooks import WebhookPayloadInvalid, stripe_event_parse, stripe_event_store
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_settings

logger = logging.getLogger("tokenledger.stripe")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, "fields": {}}, status=status)


@csrf_exempt
@transaction.non_atomic_requests
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    conf = stripe_settings()
    if not conf.webhooks_enabled:
        return _error(503, "stripe_not_configured", f"{NOT_CONFIGURED_MESSAGE} (STRIPE_WEBHOOK_SECRET is not set)")
    payload = request.body
    try:
        gateway.webhook_verify(
            payload=payload,
            signature_header=request.headers.get("Stripe-Signature"),
            secret=conf.webhook_secret,
            tolerance_seconds=conf.webhook_tolerance_seconds,
        )
        event = stripe_event_parse(payload)
    except (gateway.WebhookSignatureInvalid, WebhookPayloadInvalid) as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        return _error(400, "invalid_signature" if isinstance(exc, gateway.WebhookSignatureInvalid) else "invalid_event",
                      str(exc))  # fmt: skip
    stored, created = stripe_event_store(event=event)
    return JsonResponse({"received": True, "duplicate": not created, "status": stored.status})
