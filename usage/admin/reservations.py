"""Credit reservations in the console: read-only."""

from __future__ import annotations

from django.contrib import admin

from core.admin_base import ViewOnlyAdmin
from pricing import display
from usage.models import Reservation


@admin.register(Reservation)
class ReservationAdmin(ViewOnlyAdmin):
    list_display = ("request_id", "account", "model_id", "operation_type", "held", "status", "created_at",
                    "expires_at", "closed_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("=request_id", "account__name")
    list_select_related = ("account",)
    show_full_result_count = False

    @admin.display(description="held credits")
    def held(self, reservation: Reservation) -> str:
        return display.credits(reservation.held_credits, 2)
