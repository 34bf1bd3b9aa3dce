"""The balance page (the dashboard's home): the wallet, the period so far and at this pace, 30 days of usage."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from dashboard import charts
from dashboard.selectors import (
    account_subscription,
    balance_view,
    current_period,
    daily_usage,
    period_estimate,
    to_display,
    usage_breakdown,
)
from dashboard.templatetags.money import format_credits, format_money
from dashboard.views.access import (
    AccountContext,
    dashboard_view,
    page_context,
)
from pricing.money import USD
from usage.services.alerts import alert_recipients

CHART_DAYS = 30


@require_GET
@dashboard_view()
def balance(request: HttpRequest, context: AccountContext) -> HttpResponse:
    checkout = request.GET.get("checkout")
    if checkout in ("success", "canceled"):  # Stripe Checkout's default return addresses land here
        name = "dashboard-topup-success" if checkout == "success" else "dashboard-topup-canceled"
        query = urlencode({"session_id": request.GET["session_id"]}) if request.GET.get("session_id") else ""
        return HttpResponseRedirect(reverse(name) + (f"?{query}" if query else ""))
    account = context.account
    now = timezone.now()
    today = now.date()
    start = today - timedelta(days=CHART_DAYS - 1)
    wallet = balance_view(account=account, as_of=now)
    period = current_period(account=account, as_of=now)
    estimate = period_estimate(period=period, as_of=now) if period is not None else None
    breakdown_by = "operation" if request.GET.get("by") == "operation" else "model"
    days = daily_usage(account=account, start=start, end=today)
    breakdown = usage_breakdown(account=account, start=start, end=today, by=breakdown_by)
    daily_chart = charts.column_chart(
        [
            charts.ChartPoint(
                label=f"{day.day:%b} {day.day.day}",
                value=day.credits,
                detail=f"{format_credits(day.credits)} credits, {format_money(day.charge_usd, USD)}, "
                f"{day.events:,} requests",
            )
            for day in days
        ],
        title=f"Credits used per day, last {CHART_DAYS} days",
        description=f"One bar per UTC day from {start:%b %d} to {today:%b %d}; days without usage have no bar.",
        value_label=format_credits,
    )
    breakdown_chart = charts.bar_list_chart(
        [
            charts.ChartPoint(
                label=row.label,
                value=row.credits,
                detail=f"{format_credits(row.credits)} credits, {format_money(row.charge_usd, USD)}, "
                f"{row.events:,} requests",
            )
            for row in breakdown
        ],
        title=f"Credits used by {breakdown_by}, last {CHART_DAYS} days",
        description=f"One bar per {breakdown_by}, the longest for the most credits.",
        value_label=format_credits,
    )
    values: dict[str, Any] = {
        "wallet": wallet,
        "period": period,
        "estimate": estimate,
        "subscription": account_subscription(account=account),
        "days": days,
        "days_with_usage": sum(1 for d in days if d.events),
        "total_30d_credits": sum((d.credits for d in days), Decimal(0)),
        "total_30d_charge": sum((d.charge_usd for d in days), Decimal(0)),
        "breakdown": breakdown,
        "breakdown_by": breakdown_by,
        "daily_chart": daily_chart,
        "breakdown_chart": breakdown_chart,
        "chart_start": start,
        "today": today,
        "recipients": alert_recipients(account) if wallet.negative else [],
        "support_email": settings.SUPPORT_EMAIL,
    }
    if estimate is not None:
        values["projected_local"] = to_display(estimate.projected.total, account=account, as_of=now)
        values["usage_percent_bar"] = min(estimate.usage.usage_percentage or Decimal(0), Decimal(100))
    return render(request, "dashboard/balance.html", page_context(context, "balance", **values))
