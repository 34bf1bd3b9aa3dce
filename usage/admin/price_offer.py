"""The offer on a model's pricing page while refused events wait for it (issue 21): its price starts after them,
so their replay would be refused with no_price_in_force. The page says how many wait and since when, and its button
starts the price at the oldest of them (a back-dated version with its reason, see usage/services/replay_prices.py),
then leads to the replay screen. Pricing cannot read refused usage, so the notice is registered into it from here.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from pricing.admin.notices import model_notice_register
from pricing.models import AIModel
from usage.models import RejectedEvent
from usage.services.replay_prices import (
    WaitingForPrice,
    model_price_start_at_oldest_waiting,
    rejected_events_waiting_for_prices,
)

START_URL_NAME = "usage_rejectedevent_start_price"


def replay_screen_url() -> str:
    query = urlencode({"status__exact": RejectedEvent.Status.PENDING})
    return f"{reverse('admin:usage_rejectedevent_changelist')}?{query}"


def may_start_price(request: HttpRequest) -> bool:
    """Replaying refused events and adding a price version: both are done by the button."""
    user = request.user
    return user.has_perm("usage.change_rejectedevent") and user.has_perm("pricing.add_modelprice")


def _waiting_too_early(model: AIModel) -> WaitingForPrice | None:
    waiting = next((w for w in rejected_events_waiting_for_prices() if w.model.pk == model.pk), None)
    return waiting if waiting is not None and waiting.price_starts_too_late else None


def _utc(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at is not None else ""


def price_offer_notice(request: HttpRequest, model: AIModel) -> SafeString | None:
    """The notice with its button, when events wait for the model from before its first price."""
    waiting = _waiting_too_early(model) if may_start_price(request) else None
    if waiting is None:
        return None
    events = f"{waiting.events} rejected event{'s' if waiting.events != 1 else ''}"
    since = _utc(waiting.oldest)
    return format_html(
        '{} wait for this model since {}, but its price starts {}: replaying them would be '
        'refused with no_price_in_force. Start this price at {}? '
        '<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken" value="{}">'
        '<input type="submit" value="Start this price at {}"></form> '
        '<a href="{}">Open the replay screen</a>',
        events, since, _utc(waiting.first_price_from), since, reverse(f"admin:{START_URL_NAME}", args=[model.pk]),
        get_token(request), since, replay_screen_url(),
    )  # fmt: skip


def price_start_view(request: HttpRequest, model_pk: int) -> HttpResponse:
    """The button: the back-dated version (audited by the pricing service), then the replay screen."""
    if not may_start_price(request):
        raise PermissionDenied
    model = AIModel.objects.filter(pk=model_pk).first()
    if model is None:
        raise Http404(f"no model #{model_pk}")
    version = model_price_start_at_oldest_waiting(model=model, actor=request.user)
    if version is None:
        messages.warning(request, f"Nothing to do: no refused events wait for {model.model_id} before its price.")
        return HttpResponseRedirect(reverse("admin:pricing_aimodel_change", args=[model.pk]))
    messages.success(
        request,
        f"The price of {model.model_id} now starts at {version.effective_from:%Y-%m-%d %H:%M} UTC "
        f"({version.reason}). Replay the events now.",
    )
    return HttpResponseRedirect(replay_screen_url())


model_notice_register(price_offer_notice)
