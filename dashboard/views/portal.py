"""Portal links: `/portal/<token>` signs a customer's owner in once and opens the dashboard on that customer.

A used, expired or unknown link answers a page saying so (410) and signs nobody in.
"""

from __future__ import annotations

from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing.services.portal import portal_session_redeem
from dashboard.views.access import SESSION_ACCOUNT

SESSION_RETURN_URL = "portal_return_url"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@never_cache
@require_GET
def portal_enter(request: HttpRequest, token: str) -> HttpResponse:
    session = portal_session_redeem(token=token, ip=request.META.get("REMOTE_ADDR") or None)
    if session is None:
        response = render(request, "dashboard/portal_invalid.html", status=410)
        response["Referrer-Policy"] = "no-referrer"
        return response
    login(request, session.user, backend=MODEL_BACKEND)  # a new session: nothing of a previous sign-in is kept
    request.session[SESSION_ACCOUNT] = session.account_id
    if session.return_url:
        request.session[SESSION_RETURN_URL] = session.return_url
    redirect = HttpResponseRedirect(reverse("dashboard-balance"))
    redirect["Referrer-Policy"] = "no-referrer"  # the token never leaves in a Referer header
    return redirect
