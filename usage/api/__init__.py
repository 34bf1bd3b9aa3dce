"""Account endpoints for metering: record events, authorize a call, estimate one, read stats, export CSV, and a
reservation's state and release. One module per endpoint family; `usage/urls.py` routes to the views named here."""

from usage.api.authorize import UsageAuthorizeApi
from usage.api.estimate import UsageEstimateApi
from usage.api.events import UsageRecordApi
from usage.api.reports import RANGE_PARAMETERS, UsageExportApi, UsageStatsApi
from usage.api.reservations import ReservationDetailApi, ReservationReleaseApi

__all__ = [
    "RANGE_PARAMETERS",
    "ReservationDetailApi",
    "ReservationReleaseApi",
    "UsageAuthorizeApi",
    "UsageEstimateApi",
    "UsageExportApi",
    "UsageRecordApi",
    "UsageStatsApi",
]
