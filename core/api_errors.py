"""One JSON shape for every API error: {"error": code, "message": text, "fields": {...}}.

DRF views answer through `api_exception_handler`. What Django decides before or around a DRF view (an unknown
`/api/` path, a method a plain view does not take, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many form fields,
a CSRF refusal, a last-resort 500) goes through `ApiErrorMiddleware` and the `handler*` views, so that every
answer under `/api/` is JSON in the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.cache import CACHE_ERRORS
from core.errors import DomainError

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
    if isinstance(exc, DomainError):
        return ApiError(exc.code, str(exc), status_code=exc.status_code, fields=exc.field_messages())
    if isinstance(exc, CACHE_ERRORS):  # whatever still needs Redis while it is down: 503 JSON, never a 500
        unavailable = ApiError(
            "service_unavailable", "The cache (Redis) is not reachable; try again shortly.", status_code=503
        )
        unavailable.wait = 10  # type: ignore[attr-defined]
        return unavailable
    return None


def _request_error(exc: Exception) -> exceptions.APIException | None:
    """What Django raises while reading a request body, as the API error it means."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(f"The request body is over the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return ApiError("too_many_fields", f"The request has too many form fields or files: {exc}")
    if isinstance(exc, SuspiciousOperation):
        return ApiError("malformed_request", "The request could not be read.")
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _domain_error(exc) or _request_error(exc) or exc
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


# --- outside DRF -----------------------------------------------------------------------------------------------

logger = logging.getLogger("tokenledger.api")

_STATUS_CODES = {
    400: "malformed_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
    503: "service_unavailable",
}
_MESSAGES = {
    404: "No API endpoint at this path.",
    500: "The server could not answer this request; it has been logged.",
}


def is_api_path(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def api_error_response(*, status: int, message: str | None = None, code: str | None = None) -> JsonResponse:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return JsonResponse(
        {
            "error": code or _STATUS_CODES.get(status, "error"),
            "message": message or _MESSAGES.get(status, f"{phrase}."),
            "fields": {},
        },
        status=status,
    )


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() in ("application/json", "application/problem+json")


def _unreadable_address(request: HttpRequest) -> str | None:
    """Why the path or query string cannot be used (a NUL character, which no text column or header can hold and
    no real client sends), or None. Refused for every page and endpoint, before any view sees it."""
    if "\x00" in request.path_info:
        return "The path holds a NUL character (%00)."
    query = request.META.get("QUERY_STRING", "")
    if "%00" in query or "\x00" in query:
        return "The query string holds a NUL character (%00)."
    return None


def _declared_too_large(request: HttpRequest) -> str | None:
    """Why a non-multipart API body is refused unread: its declared length is over DATA_UPLOAD_MAX_MEMORY_SIZE.
    (DRF reads JSON bodies from the stream, past Django's own check; a multipart upload's file parts have their own
    limit, checked by the endpoint that takes them.)"""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None or request.content_type == "multipart/form-data":
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > limit:
        return f"The request body is {length} bytes; the limit is {limit} bytes."
    return None


class ApiErrorMiddleware:
    """Every page and endpoint: a path or query string with a NUL character is refused with 400 before any view.

    Under /api/: a declared body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused with 413 unread; a request error
    Django raises in a view (body too big, too many fields) is answered 413 or 400; and any error answer that is
    not JSON (Django's HTML 404, an empty 405, a CSRF page, a debug 500) is replaced by the JSON error of the same
    status, its headers (Allow, Retry-After, WWW-Authenticate) kept."""

    _KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "X-Request-ID")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = _unreadable_address(request)
        if refusal:
            if is_api_path(request):
                return api_error_response(status=400, message=refusal, code="malformed_request")
            return HttpResponseBadRequest(refusal, content_type="text/plain; charset=utf-8")
        too_large = _declared_too_large(request) if is_api_path(request) else None
        if too_large:
            return api_error_response(status=413, message=too_large, code="payload_too_large")
        response = self.get_response(request)
        if not is_api_path(request) or response.status_code < 400 or _is_json(response):
            return response
        replacement = api_error_response(status=response.status_code)
        for header in self._KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request):
            return None
        error = _request_error(exception)
        if error is None:
            return None  # Django logs it and answers through handler500
        logger.warning("API request refused: %s %s: %s", request.method, request.path, exception)
        code = error.error_code if isinstance(error, ApiError) else "payload_too_large"
        return api_error_response(status=error.status_code, message=str(error.detail), code=code)


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request):
        error = _request_error(exception)
        if isinstance(error, PayloadTooLarge):
            return api_error_response(status=413, message=str(error.detail))
        return api_error_response(status=400, message=str(error.detail) if error else None)
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request):
        return api_error_response(status=403, message="You are not allowed to do this.")
    return defaults.permission_denied(request, exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        return api_error_response(status=404)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        return api_error_response(status=500)
    return defaults.server_error(request)
