"""Dead letters (refused usage) in the console: read-only, replayed or discarded through the replay services."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from billing.errors import BillingError
from core.admin_base import ViewOnlyAdmin
from usage.admin import price_offer
from usage.admin.base import _pretty_json
from usage.models import RejectedEvent
from usage.services.recording import DUPLICATE, RECORDED, REJECTED
from usage.services.replay import DISCARDED, SKIPPED, rejected_event_discard, rejected_event_replay
from usage.services.replay_prices import (
    WaitingForPrice,
    model_prices_start_for_rejected,
    rejected_events_waiting_for_prices,
)

OUTCOME_WORDS = {  # in the order the action's message lists them
    RECORDED: "recorded",
    DUPLICATE: "already recorded (duplicate)",
    REJECTED: "refused again (see Replay result)",
    DISCARDED: "discarded",
    SKIPPED: "skipped (not pending)",
    "failed": "failed",
}


def outcome_summary(verb: str, outcomes: Counter[str]) -> str:
    """The action's message, e.g. 'Replayed 3: 2 recorded, 1 refused again (see Replay result).'"""
    parts = [f"{outcomes[outcome]} {words}" for outcome, words in OUTCOME_WORDS.items() if outcomes[outcome]]
    parts += [f"{count} {outcome}" for outcome, count in outcomes.items() if outcome not in OUTCOME_WORDS]
    return f"{verb} {sum(outcomes.values())}: " + ", ".join(parts) + "."


@admin.register(RejectedEvent)
class RejectedEventAdmin(ViewOnlyAdmin):
    list_display = ("received_at", "account", "request_id", "error_code", "short_message", "status", "replay_result")
    list_filter = (
        "error_code",
        "status",
        ("received_at", admin.DateFieldListFilter),
        ("account", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("request_id",)
    search_help_text = "Part of a request id."
    list_select_related = ("account",)
    actions = ("replay_selected", "discard_selected", "start_prices_at_oldest_waiting")
    fields = ("account", "request_id", "error_code", "error_message", "received_at", "status", "replayed_at",
              "replay_result", "payload_pretty", "raw_payload", "ip", "user_agent")  # fmt: skip
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        start = self.admin_site.admin_view(require_POST(price_offer.price_start_view))
        return [path("start-price/<int:model_pk>/", start, name=price_offer.START_URL_NAME), *super().get_urls()]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("usage.change_rejectedevent")

    @admin.display(description="message")
    def short_message(self, rejected: RejectedEvent) -> str:
        text = rejected.error_message
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.display(description="payload")
    def payload_pretty(self, rejected: RejectedEvent) -> str:
        return _pretty_json(rejected.payload)

    def _run(
        self, request: HttpRequest, queryset: QuerySet[RejectedEvent], verb: str, service: Callable[..., str]
    ) -> None:
        outcomes: Counter[str] = Counter()
        failures: list[str] = []
        for rejected in queryset.select_related("account").order_by("received_at", "pk"):
            try:
                outcomes[service(rejected=rejected, actor=request.user)] += 1
            except BillingError as exc:  # e.g. the account has no subscription: this row only
                outcomes["failed"] += 1
                failures.append(f"#{rejected.pk}: {exc.message}")
        level = messages.WARNING if outcomes[REJECTED] or outcomes["failed"] else messages.SUCCESS
        summary = outcome_summary(verb, outcomes)
        if failures:
            summary += " " + "; ".join(failures[:5])
        self.message_user(request, summary, level)

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[RejectedEvent]) -> None:
        self._run(request, queryset, "Replayed", rejected_event_replay)

    @admin.action(description="Discard selected events", permissions=["replay"])
    def discard_selected(self, request: HttpRequest, queryset: QuerySet[RejectedEvent]) -> None:
        self._run(request, queryset, "Discarded", rejected_event_discard)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "GET":
            for waiting in rejected_events_waiting_for_prices():
                if waiting.price_starts_too_late:
                    self.message_user(request, _price_too_late_text(waiting), messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Start their models' prices at the oldest waiting event", permissions=["replay"])
    def start_prices_at_oldest_waiting(self, request: HttpRequest, queryset: QuerySet[RejectedEvent]) -> None:
        if not request.user.has_perm("pricing.add_modelprice"):
            raise PermissionDenied
        for version in model_prices_start_for_rejected(rejected=queryset, actor=request.user):
            self.message_user(request, f"The price of {version.model.model_id} now starts at "
                              f"{version.effective_from:%Y-%m-%d %H:%M} UTC ({version.reason}). Replay the events now.",
                              messages.SUCCESS)  # fmt: skip


def _price_too_late_text(waiting: WaitingForPrice) -> str:
    first = waiting.first_price_from
    return (
        f"{waiting.events} refused event{'s' if waiting.events != 1 else ''} wait for {waiting.model.model_id} since "
        f"{waiting.oldest:%Y-%m-%d %H:%M} UTC, but its price starts {first:%Y-%m-%d %H:%M} UTC: a replay would be "
        "refused with no_price_in_force. Select them and run “Start their models' prices at the oldest waiting "
        "event” (a back-dated price version, with its reason), then replay them."
    )
