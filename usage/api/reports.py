"""GET /api/usage/stats and /api/usage/export.csv: an account's usage over a range of days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import AccountApi
from billing.authentication import request_account
from core.api_errors import ApiError
from core.decimals import decimal_string
from usage.selectors import Bucket, usage_export_rows, usage_stats

# The days a range may name: usage exists from 1970 on, and the day after `to` must still be a date.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def _day(request: Request, name: str, default: date) -> date:
    value = request.query_params.get(name)
    if not value:
        return default
    try:
        # a day, or a full ISO time (its date, as written): never a prefix of something that is not a time
        day = datetime.fromisoformat(value).date()
    except ValueError:
        raise ApiError("invalid", f"{name} must be a date, e.g. 2026-11-01", fields={name: "YYYY-MM-DD"}) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ApiError(
            "invalid", f"{name} must be between {FIRST_DAY} and {LAST_DAY}", fields={name: "a day from 1970 to 9998"}
        )
    return day


def _range(request: Request) -> tuple[date, date]:
    today = timezone.now().date()
    start = _day(request, "from", today.replace(day=1))
    end = _day(request, "to", today)
    if end < start:
        raise ApiError("invalid", "to is before from", fields={"to": "on or after from"})
    if (end - start).days > 366:
        raise ApiError("invalid", "a range covers at most 366 days", fields={"to": "at most 366 days after from"})
    return start, end


def _bucket(bucket: Bucket) -> dict[str, Any]:
    return {
        "events": bucket.events, "input_tokens": bucket.input_tokens, "output_tokens": bucket.output_tokens,
        "total_tokens": bucket.total_tokens, "cost_usd": decimal_string(bucket.cost_usd),
        "charge_usd": decimal_string(bucket.charge_usd), "credits": decimal_string(bucket.credits),
    }  # fmt: skip


RANGE_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first UTC day (default: the 1st of this month)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last UTC day, inclusive (default: today)"),
]


class UsageStatsApi(AccountApi):
    @extend_schema(parameters=RANGE_PARAMETERS, responses=OpenApiTypes.OBJECT, summary="Usage totals and breakdowns")
    def get(self, request: Request) -> Response:
        start, end = _range(request)
        stats = usage_stats(account=request_account(request), start=start, end=end)
        total = stats.total
        return Response(
            {
                "from": start.isoformat(),
                "to": end.isoformat(),
                "total_events": total.events,
                "total_tokens": total.total_tokens,
                "total_cost_usd": decimal_string(total.charge_usd),
                "total_provider_cost_usd": decimal_string(total.cost_usd),
                "avg_cost_usd": decimal_string(total.charge_usd / total.events) if total.events else "0",
                "by_operation_type": {k: _bucket(v) for k, v in stats.by_operation_type.items()},
                "by_model": {k: _bucket(v) for k, v in stats.by_model.items()},
                "by_day": {k: _bucket(v) for k, v in stats.by_day.items()},
            }
        )


class UsageExportApi(AccountApi):
    @extend_schema(parameters=RANGE_PARAMETERS, responses={(200, "text/csv"): OpenApiTypes.STR},
                   summary="The account's events as CSV (streamed)")  # fmt: skip
    def get(self, request: Request) -> StreamingHttpResponse:
        start, end = _range(request)
        rows = usage_export_rows(
            account=request_account(request),
            start=datetime.combine(start, time.min, tzinfo=UTC),
            end=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
        )
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="usage-{start}-{end}.csv"'
        return response
