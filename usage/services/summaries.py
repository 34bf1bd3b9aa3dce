"""Scheduled checks and summaries: daily cost, anomalies, weekly and monthly summaries, cleanup."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum

from billing.models import Account, Invoice
from billing.services.accounts import account_set_status
from billing.services.outbox import OutboxResult
from pricing.money import Money
from usage.models import AlertDelivery, DailyUsage, RejectedEvent, Reservation, UsageEvent
from usage.services.alerts import Alert, alert_deliver, alert_raise

CENT = Decimal("0.01")


def _usd(amount: Decimal) -> str:
    return f"${amount.quantize(CENT, ROUND_HALF_UP)}"


def month_projection(*, month_to_date: Decimal, day: date) -> Decimal:
    """The month's total if the rest of it goes like the days so far (day 1 .. `day`)."""
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    return month_to_date * days_in_month / day.day


def daily_cost_alerts(*, as_of: datetime) -> int:
    """Alert every account whose charges on the UTC day that ended before `as_of` passed the daily limit."""
    day = (as_of - timedelta(days=1)).date()
    limit = Decimal(settings.ALERT_DAILY_COST_USD)
    raised = 0
    rows = (
        DailyUsage.objects.filter(day=day)
        .values("account_id")
        .annotate(charge=Sum("charge_usd"))
        .filter(charge__gt=limit)
    )
    for row in rows:
        account = Account.objects.get(pk=row["account_id"])
        month_to_date = DailyUsage.objects.filter(account=account, day__gte=day.replace(day=1), day__lte=day).aggregate(
            total=Sum("charge_usd")
        )["total"] or Decimal(0)
        projected = month_projection(month_to_date=month_to_date, day=day)
        raised += bool(alert_raise(
            account=account, kind=Alert.Kind.DAILY_COST, threshold=limit, period_key=day.isoformat(),
            value=row["charge"], subject=f"{account.name} spent {_usd(row['charge'])} on {day:%Y-%m-%d}",
            message=(f"Charges on {day:%Y-%m-%d} were {_usd(row['charge'])}, above the {_usd(limit)} daily limit. "
                     f"At this pace the month comes to {_usd(projected)}."),
            context={"day": day, "projected_month_usd": projected.quantize(CENT, ROUND_HALF_UP)}, now=as_of,
        ))  # fmt: skip
    return raised


def anomaly_scan(*, as_of: datetime) -> dict[str, int]:
    """Flag accounts whose last hour cost more than ANOMALY_FACTOR x their average hour over the past 7 days.

    A minimum volume (ANOMALY_MIN_EVENTS events and ANOMALY_MIN_USD in the hour) keeps quiet accounts from
    alerting on noise. Plans with `anomaly_suspends` suspend the account; the default only flags it.
    """
    hour_end = as_of.replace(minute=0, second=0, microsecond=0)
    hour_start = hour_end - timedelta(hours=1)
    factor = Decimal(settings.ANOMALY_FACTOR)
    flagged = suspended = 0
    last_hour = (
        UsageEvent.objects.filter(occurred_at__gte=hour_start, occurred_at__lt=hour_end)
        .values("account_id")
        .annotate(events=Count("id"), charge=Sum("charge_usd"))
        .filter(events__gte=settings.ANOMALY_MIN_EVENTS, charge__gte=Decimal(settings.ANOMALY_MIN_USD))
    )
    for row in last_hour:
        week = DailyUsage.objects.filter(
            account_id=row["account_id"], day__gte=(hour_start - timedelta(days=7)).date(), day__lt=hour_start.date()
        ).aggregate(total=Sum("charge_usd"))["total"] or Decimal(0)
        average_hour = week / (7 * 24)
        if row["charge"] <= factor * average_hour:
            continue
        account = Account.objects.select_related("subscription__plan").get(pk=row["account_id"])
        ratio = (row["charge"] / average_hour).quantize(CENT) if average_hour else None
        alert = alert_raise(
            account=account, kind=Alert.Kind.ANOMALY, threshold=factor, period_key=hour_start.isoformat(),
            value=row["charge"], subject=f"Unusual spend on {account.name}",
            message=(f"The hour from {hour_start:%Y-%m-%d %H:%M} UTC cost {_usd(row['charge'])} over {row['events']} "
                     f"requests" + (f", {ratio}x the average hour of the past week." if ratio else
                                    ", with no usage the week before.")),
            now=as_of,
        )  # fmt: skip
        if alert is None:
            continue
        flagged += 1
        plan = getattr(getattr(account, "subscription", None), "plan", None)
        if plan is not None and plan.anomaly_suspends and account.status == Account.Status.ACTIVE:
            account_set_status(account=account, status=Account.Status.SUSPENDED)
            suspended += 1
    return {"flagged": flagged, "suspended": suspended}


def weekly_summaries(*, as_of: datetime) -> int:
    """A summary of the 7 UTC days before `as_of` to every account that used anything in them."""
    end = as_of.date()
    start = end - timedelta(days=7)
    sent = 0
    rows = (
        DailyUsage.objects.filter(day__gte=start, day__lt=end)
        .values("account_id")
        .annotate(
            events=Sum("events"),
            charge=Sum("charge_usd"),
            tokens_in=Sum("input_tokens"),
            tokens_out=Sum("output_tokens"),
        )
    )
    for row in rows:
        account = Account.objects.get(pk=row["account_id"])
        top = (
            DailyUsage.objects.filter(account=account, day__gte=start, day__lt=end)
            .values("model_id").annotate(charge=Sum("charge_usd")).order_by("-charge")[:3]
        )  # fmt: skip
        lines = [f"{t['model_id']}: {_usd(t['charge'])}" for t in top]
        sent += bool(alert_raise(
            account=account, kind=Alert.Kind.WEEKLY_SUMMARY, threshold=0, period_key=start.isoformat(),
            value=row["charge"], subject=f"{account.name}: your week in usage",
            message=(f"From {start:%Y-%m-%d} to {end - timedelta(days=1):%Y-%m-%d}: {row['events']} requests, "
                     f"{row['tokens_in'] + row['tokens_out']} tokens, {_usd(row['charge'])}. Top models:"),
            context={"lines": lines}, now=as_of,
        ))  # fmt: skip
    return sent


def _monthly_summary_alert(*, invoice: Invoice, as_of: datetime) -> Alert:
    period = invoice.period
    lines = [
        f"Plan: {invoice.plan_code}",
        f"Usage: {invoice.units.normalize():f} {invoice.unit}" + (
            f" of {invoice.included_units.normalize():f} included" if invoice.included_units is not None else ""),
        f"Requests: {invoice.messages}; tokens in {invoice.input_tokens}, out {invoice.output_tokens}",
        f"Base charge: {_usd(invoice.base_charge)}; overage: {_usd(invoice.overage)}"
        + (" (capped)" if invoice.cap_applied else ""),
        *([f"Late usage of earlier periods: {_usd(invoice.late_usage)}"] if invoice.late_usage else []),
        f"Total: {Money.from_minor_units(invoice.amount_cents, invoice.currency).amount} {invoice.currency}",
    ]  # fmt: skip
    return Alert(
        account=invoice.account, kind=Alert.Kind.MONTHLY_SUMMARY, threshold=Decimal(0),
        period_key=period.start.date().isoformat(), value=invoice.total,
        subject=f"{invoice.account.name}: your summary for {period.start:%B %Y}",
        message=f"The period {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d} is closed.", context={"lines": lines},
        created_at=as_of,
    )  # fmt: skip


def monthly_summaries_send(invoices: list[Invoice], as_of: datetime) -> dict[int, OutboxResult]:
    """The outbox handler of monthly summaries: each closed period's summary to the account's owners and admins,
    once per period (the alert's unique constraint; a channel already delivered is never sent again). A webhook
    that fails keeps the row pending with its error, and the retry sends only that channel."""
    if not invoices:
        return {}
    Alert.objects.bulk_create([_monthly_summary_alert(invoice=i, as_of=as_of) for i in invoices], ignore_conflicts=True)
    alerts = {
        (a.account_id, a.period_key): a.pk
        for a in Alert.objects.filter(
            kind=Alert.Kind.MONTHLY_SUMMARY, account_id__in={i.account_id for i in invoices},
            period_key__in={i.period.start.date().isoformat() for i in invoices},
        ).only("pk", "account_id", "period_key")
    }  # fmt: skip
    results: dict[int, OutboxResult] = {}
    for invoice in invoices:
        alert_id = alerts[(invoice.account_id, invoice.period.start.date().isoformat())]
        with transaction.atomic():
            failure = alert_deliver(alert_id=alert_id, now=as_of)
        results[invoice.pk] = OutboxResult(failure is None, outcome=f"alert #{alert_id}", error=failure or "")
    return results


@transaction.atomic
def cleanup(*, as_of: datetime) -> dict[str, int]:
    """Delete what has passed its retention: closed reservations, delivery logs, and dead letters no one replayed."""
    reservations, _ = Reservation.objects.filter(
        status__in=[Reservation.Status.SETTLED, Reservation.Status.EXPIRED],
        closed_at__lt=as_of - timedelta(days=settings.RETENTION_RESERVATIONS_DAYS),
    ).delete()
    deliveries, _ = AlertDelivery.objects.filter(
        status=AlertDelivery.Status.SENT, created_at__lt=as_of - timedelta(days=settings.RETENTION_DELIVERY_LOG_DAYS)
    ).delete()
    dead_letters, _ = RejectedEvent.objects.filter(
        status__in=[RejectedEvent.Status.REPLAYED, RejectedEvent.Status.DISCARDED],
        received_at__lt=as_of - timedelta(days=settings.RETENTION_DEAD_LETTERS_DAYS),
    ).delete()
    return {"reservations": reservations, "deliveries": deliveries, "dead_letters": dead_letters}
