"""Dead letters (refused usage) in the console: read-only, replayed or discarded through the replay services."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.errors import BillingError
from core.admin_base import ViewOnlyAdmin
from usage.admin.base import _pretty_json
from usage.models import RejectedEvent
from usage.services.recording import DUPLICATE, RECORDED, REJECTED
from usage.services.replay import DISCARDED, SKIPPED, rejected_event_discard, rejected_event_replay

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
    actions = ("replay_selected", "discard_selected")
    fields = ("account", "request_id", "error_code", "error_message", "received_at", "status", "replayed_at",
              "replay_result", "payload_pretty", "raw_payload", "ip", "user_agent")  # fmt: skip
    readonly_fields = fields

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
