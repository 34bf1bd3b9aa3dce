"""Period-close benchmark: the monthly close over many accounts on PostgreSQL, Stripe off.

    .venv/bin/python bench/close.py [--accounts 10000] [--events-per-account 100]

Makes its own database, then loads (untimed, in bulk) `--accounts` accounts on the `starter` message plan, each with
an October 2026 period holding `--events-per-account` recorded events and the matching counters (a third of the
accounts past their included messages, so they have overage). Then it times the close job exactly as beat runs it
(`jobs.close_periods` through job_run: grant expiry, period close with invoices, next periods opened, monthly
summaries queued) for 2026-11-01T03:00Z, checks the books (one invoice per account, a second run changes nothing,
`check_integrity` finds no problem) and reports total seconds and time per account. Target (issue 7): < 60 s for
10,000 accounts with 100 events each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

DATABASE = "tokenledger_bench_close"
TARGET_SECONDS = 60
OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--events-per-account", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args()


def load(accounts: int, events_per_account: int) -> None:
    """Accounts, wallets, subscriptions, October periods and their events, in bulk (not timed)."""
    from billing.models import Account, BillingPeriod, Subscription, Wallet
    from pricing.models import Plan, PlanTerms
    from usage.models import UsageEvent

    plan = Plan.objects.get(code="starter")
    terms = PlanTerms.objects.filter(plan=plan).latest("effective_from")
    made = Account.objects.bulk_create(Account(name=f"Bench shop {n}") for n in range(accounts))
    Wallet.objects.bulk_create(Wallet(account=a) for a in made)
    Subscription.objects.bulk_create(
        Subscription(account=a, plan=plan, started_at=OCT_1, current_period_start=OCT_1, current_period_end=NOV_1)
        for a in made
    )
    cost = Decimal("0.000150")  # qwen-3-32b, 1,000 in + 500 out
    periods = BillingPeriod.objects.bulk_create(
        BillingPeriod(
            account=a, start=OCT_1, end=NOV_1, plan=plan, terms=terms, unit="messages",
            included_units=terms.included_units, units_used=Decimal(events_per_account), messages=events_per_account,
            input_tokens=1000 * events_per_account, output_tokens=500 * events_per_account,
            provider_cost_usd=cost * events_per_account, charge_usd=cost * events_per_account,
        )
        for a in made
    )  # fmt: skip
    # a third of the accounts used far more messages than included: they have overage to invoice
    overage = [p.pk for p in periods[::3]]
    BillingPeriod.objects.filter(pk__in=overage).update(units_used=Decimal(5000))
    harness.log(f"{accounts} accounts, wallets, subscriptions and periods loaded; loading events")
    batch = uuid.uuid4()
    rows: list[UsageEvent] = []
    started = time.perf_counter()
    for period in periods:
        for n in range(events_per_account):
            at = OCT_1 + timedelta(minutes=(period.pk * 7 + n * 13) % (30 * 24 * 60))
            rows.append(
                UsageEvent(
                    account_id=period.account_id,
                    period=period,
                    request_id=f"r{n}",
                    batch_id=batch,
                    model_id="qwen-3-32b",
                    model_requested="qwen-3-32b",
                    input_tokens=1000,
                    output_tokens=500,
                    occurred_at=at,
                    received_at=at,
                    cost_usd=cost,
                    charge_usd=cost,
                    credits=Decimal("1.5"),
                    units=Decimal(1),
                    plan_code="starter",
                )
            )
        if len(rows) >= 20_000:
            UsageEvent.objects.bulk_create(rows, batch_size=5_000)
            rows.clear()
    UsageEvent.objects.bulk_create(rows, batch_size=5_000)
    # the overage accounts' counters say 5,000 units; their events say fewer. Make the events agree, so the
    # integrity check afterwards is meaningful: units per event = 5000 / events.
    UsageEvent.objects.filter(period_id__in=overage).update(units=Decimal(5000) / events_per_account)
    harness.log(f"{accounts * events_per_account} events loaded in {time.perf_counter() - started:.0f} s")


def main() -> None:
    args = arguments()
    harness.prepare_database(DATABASE)
    load(args.accounts, args.events_per_account)
    harness.checkpoint(DATABASE)

    from django.core import mail

    from billing.models import BillingPeriod, Invoice
    from config import tasks
    from config.celery import app
    from reconciliation.integrity import integrity_check

    mail.outbox = []
    app.conf.task_always_eager = False  # summaries are queued to Redis, as in production; no worker drains them
    harness.log("closing periods (timed)")
    started = time.perf_counter()
    counts = tasks.close_periods(as_of=(NOV_1 + timedelta(hours=3)).isoformat())
    seconds = time.perf_counter() - started
    invoices = Invoice.objects.count()
    with_overage = Invoice.objects.filter(overage__gt=0).count()
    rerun_started = time.perf_counter()
    rerun = tasks.close_periods(as_of=(NOV_1 + timedelta(hours=3)).isoformat())
    rerun_seconds = time.perf_counter() - rerun_started
    problems = integrity_check()
    result = {
        "benchmark": "close",
        "accounts": args.accounts,
        "events": args.accounts * args.events_per_account,
        "close_seconds": round(seconds, 2),
        "ms_per_account": round(seconds * 1000 / args.accounts, 2),
        "target_seconds": TARGET_SECONDS,
        "met_target": seconds < TARGET_SECONDS * args.accounts / 10_000,
        "counts": counts,
        "invoices": invoices,
        "invoices_with_overage": with_overage,
        "next_periods_open": BillingPeriod.objects.filter(start=NOV_1, status="open").count(),
        "rerun": rerun,
        "rerun_seconds": round(rerun_seconds, 2),
        "integrity_problems": len(problems),
        "machine": harness.machine(),
    }
    print(json.dumps(result))
    print(
        f"\nclose: {args.accounts} accounts in {seconds:.1f} s ({result['ms_per_account']} ms each); "
        f"{invoices} invoices ({with_overage} with overage); re-run {rerun} in {rerun_seconds:.2f} s; "
        f"integrity problems: {len(problems)}",
        file=sys.stderr,
    )
    ok = invoices == args.accounts and rerun.get("closed") == 0 and not problems
    harness.django_disconnect()
    if not args.keep:
        harness.database_drop(DATABASE)
    if not ok:
        raise SystemExit("the books do not balance after the close: see the summary above")


if __name__ == "__main__":
    main()
