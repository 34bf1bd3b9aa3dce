"""Sign-in throttling with django-axes (AXES_* settings): HTTP Basic that counts wrong passwords, and the answer
a caller sees once sign-ins are paused.

Pages (the dashboard sign-in, the admin) answer 429 with a page that says why and for how long; `/api/` answers
429 in the API's error shape, `{"error": "sign_in_locked", ...}`; both with `Retry-After` (the cool-off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, status

LOCKED_CODE = "sign_in_locked"


def lockout_message(*, failure_limit: int, seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (
        f"Too many failed sign-ins: after {failure_limit} wrong passwords for this user from this address, "
        f"signing in is paused for {minutes} minute{'s' if minutes != 1 else ''}, even with the right password."
    )


def lockout_remaining_seconds(request: HttpRequest, username: str | None) -> int:
    """Seconds until this username may sign in again from this address: the cool-off after its last failure."""
    cool_off = get_cool_off(request)
    if not cool_off:
        return 0
    last = (
        AccessAttempt.objects.filter(username=username, ip_address=getattr(request, "axes_ip_address", None))
        .aggregate(last=Max("attempt_time"))["last"]
    )  # fmt: skip
    if last is None:
        return int(cool_off.total_seconds())
    return max(1, math.ceil((last + cool_off - timezone.now()).total_seconds()))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the 429 answer for a sign-in refused because of the lockout."""
    username = get_client_username(request, credentials) or ""
    seconds = lockout_remaining_seconds(request, username)
    failure_limit = get_failure_limit(request, credentials)
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {
                "error": LOCKED_CODE,
                "message": lockout_message(failure_limit=failure_limit, seconds=seconds),
                "fields": {},
            },
            status=429,
        )
    else:
        context = {
            "failure_limit": failure_limit,
            "username": username,
            "retry_minutes": max(1, math.ceil(seconds / 60)) if seconds else None,
        }
        response = render(request, "registration/locked_out.html", context, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


class SignInLocked(exceptions.APIException):
    """429: sign-ins are paused for this user from this address (AXES_FAILURE_LIMIT, AXES_COOLOFF_TIME).

    An APIException of its own (not core.api_errors.ApiError, which imports DRF's views, which import this
    module through DEFAULT_AUTHENTICATION_CLASSES); the error handler answers it as `sign_in_locked`.
    """

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = LOCKED_CODE

    def __init__(self, *, failure_limit: int, seconds: int) -> None:
        super().__init__(lockout_message(failure_limit=failure_limit, seconds=seconds), LOCKED_CODE)
        self.wait = seconds  # DRF turns `wait` into Retry-After


class BasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic (staff on the admin API and the catalog), with wrong passwords counted by django-axes.

    After AXES_FAILURE_LIMIT failures for a username from one address, even the right password answers 429
    `sign_in_locked` until the cool-off ends; a success clears that username's failures from that address.
    A failure is recorded by SignInFailureMiddleware once the request's transaction is over: inside it, the
    rollback that follows the 401 would erase the record.
    """

    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> tuple[Any, None]:
        # axes keeps its state on the Django request, which the middlewares read; DRF's Request wraps it
        django_request = getattr(request, "_request", request)
        credentials = {"username": userid}
        if not AxesProxyHandler.is_allowed(django_request, credentials):
            raise SignInLocked(
                failure_limit=get_failure_limit(django_request, credentials),
                seconds=lockout_remaining_seconds(django_request, userid),
            )
        user = ModelBackend().authenticate(django_request, username=userid, password=password)
        if user is None:  # a wrong password, an unknown or an inactive user
            django_request.sign_in_failed = credentials
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        axes_reset(ip=getattr(django_request, "axes_ip_address", None), username=userid)
        return user, None


class SignInFailureMiddleware:
    """Records a failed HTTP Basic sign-in (django-axes) after the view's transaction has ended."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        credentials = getattr(request, "sign_in_failed", None)
        if credentials is not None:
            user_login_failed.send(sender=BasicAuthentication, credentials=credentials, request=request)
        return response


class BasicAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "core.sign_in.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic", "description": "A staff user; wrong passwords pause sign-ins."}
