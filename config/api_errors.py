"""One JSON shape for every API error: {"error": code, "message": text, "fields": {...}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service TokenLedger depends on is not available."
    default_code = "service_unavailable"


class ApiError(exceptions.APIException):
    """A domain refusal with its own code, e.g. ApiError("unknown_plan", "No plan 'x'", status=400)."""

    def __init__(self, code: str, message: str, *, status_code: int = 400, fields: dict[str, Any] | None = None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.fields = fields or {}


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
        return "Invalid input."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def _domain_error(exc: Exception) -> ApiError | None:
    """A refusal raised by a service (PricingError, BillingError, ...) as the API error it means."""
    from billing.errors import BillingError
    from pricing.errors import CatalogValidationError, PricingError

    if isinstance(exc, CatalogValidationError):
        return ApiError(exc.code, str(exc), fields={name: [message] for name, message in exc.fields.items()})
    if isinstance(exc, PricingError | BillingError):
        return ApiError(
            exc.code, str(exc), status_code=getattr(exc, "status_code", 400), fields=getattr(exc, "fields", None)
        )
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _domain_error(exc) or exc
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, ApiError):
        body = {"error": exc.error_code, "message": str(exc.detail), "fields": exc.fields}
    elif isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = {"error": "invalid", "message": _first_message(exc.detail), "fields": fields}
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
        code = code or (exc.default_code if isinstance(exc.default_code, str) else "error")
        body = {"error": code, "message": _first_message(exc.detail), "fields": {}}
    response.data = body
    return response
