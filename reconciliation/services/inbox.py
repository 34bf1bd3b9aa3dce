"""The scheduled reconciliation: every file dropped into RECONCILIATION_INBOX, then an alert to staff if needed.

A file whose SHA-256 a completed run already has is not run again. Each processed file moves to `done/`, one that
cannot be read at all to `failed/`, so the next job sees only new files. Staff get one email when a run's match rate
is below RECONCILIATION_ALERT_MATCH_RATE, a discrepancy exceeds RECONCILIATION_ALERT_DISCREPANCY_USD, or a file
could not be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from reconciliation.conf import ReconciliationSettings, reconciliation_settings
from reconciliation.matching import usd
from reconciliation.models import ReconciliationRun
from reconciliation.parsers import UnreadableFile
from reconciliation.selectors import run_completed_same_file, run_large_discrepancies, staff_emails
from reconciliation.services.runs import file_fingerprint, reconciliation_run

logger = logging.getLogger("tokenledger.reconciliation")
DONE, FAILED = "done", "failed"


@dataclass
class InboxOutcome:
    runs: list[ReconciliationRun] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    alerted: list[str] = field(default_factory=list)  # recipients of the alert, empty when none was sent

    def counts(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "already_done": len(self.already_done),
            "unreadable": len(self.unreadable),
            "alert_recipients": len(self.alerted),
        }


def _inbox_files(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))


def _move(path: Path, folder: Path, run_id: int | None) -> Path:
    """Move a file into `folder`; a name already there gets the run id (or a counter) in front."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        prefix = f"run-{run_id}" if run_id is not None and counter == 1 else f"{counter}"
        target = folder / f"{prefix}-{path.name}"
        counter += 1
    return path.rename(target)


def reconciliation_inbox_process(*, as_of: datetime) -> InboxOutcome:
    """Reconcile each new file in the inbox (source told from its header), file it away, and alert staff."""
    config = reconciliation_settings()
    outcome = InboxOutcome()
    for path in _inbox_files(config.inbox):
        with path.open("rb") as handle:
            sha256, _ = file_fingerprint(handle)
            earlier = run_completed_same_file(sha256=sha256)
            if earlier is not None:
                outcome.already_done.append(path.name)
                run_id: int | None = earlier.pk
            else:
                try:
                    result = reconciliation_run(
                        source=None,
                        file=handle,
                        file_name=path.name,
                        as_of=as_of,
                        trigger=ReconciliationRun.Trigger.SCHEDULE,
                    )
                except UnreadableFile as exc:
                    outcome.unreadable.append((path.name, str(exc)))
                    logger.warning("reconciliation inbox: %s cannot be read: %s", path.name, exc)
                    handle.close()
                    _move(path, config.inbox / FAILED, None)
                    continue
                assert result.run is not None
                outcome.runs.append(result.run)
                run_id = result.run.pk
        _move(path, config.inbox / DONE, run_id)
    outcome.alerted = reconciliation_alert_send(
        runs=outcome.runs, unreadable=outcome.unreadable, config=config, as_of=as_of
    )
    return outcome


def _run_url(run: ReconciliationRun) -> str:
    path = reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
    return f"{getattr(settings, 'SITE_URL', '').rstrip('/')}{path}"


def run_alert_reasons(run: ReconciliationRun, config: ReconciliationSettings) -> list[str]:
    """Why a run needs an admin's eyes (empty: it does not)."""
    reasons = []
    if run.match_rate is not None and run.match_rate < config.alert_match_rate:
        reasons.append(f"match rate {run.match_rate * 100:.1f} % is below {config.alert_match_rate * 100:.1f} %")
    for line in run_large_discrepancies(run=run, above=config.alert_discrepancy_usd, limit=5):
        reasons.append(
            f"{line.key}: we calculated {usd(line.calculated_usd)}, the provider billed "
            f"{usd(line.actual_usd or Decimal(0))}: {line.reason or line.get_reason_code_display()}"
        )
    return reasons


def reconciliation_alert_send(
    *,
    runs: list[ReconciliationRun],
    unreadable: list[tuple[str, str]],
    config: ReconciliationSettings,
    as_of: datetime,
) -> list[str]:
    """One email to the active staff users with an address, when any run or file needs attention; the recipients."""
    sections = []
    for run in runs:
        reasons = run_alert_reasons(run, config)
        if reasons:
            sections.append(
                f"Run #{run.pk}: {run.file_name} ({run.source}), {run.matched} matched, {run.discrepancy} "
                f"discrepancies, {run.not_found} not found, {run.not_in_export} not in export, {run.errors} errors; "
                f"provider {usd(run.total_actual_usd)} against our {usd(run.total_calculated_usd)}.\n"
                + "".join(f"  - {reason}\n" for reason in reasons)
                + f"  {_run_url(run)}\n"
            )
    for name, why in unreadable:
        sections.append(f"{name} could not be read and was moved to {FAILED}/: {why}\n")
    recipients = staff_emails()
    if not sections or not recipients:
        return []
    body = (
        f"The reconciliation of {as_of:%Y-%m-%d %H:%M} UTC needs your attention "
        f"(alert below a {config.alert_match_rate * 100:.1f} % match rate or above {usd(config.alert_discrepancy_usd)} "
        "on one line).\n\n" + "\n".join(sections)
    )
    subject = f"TokenLedger reconciliation: {len(sections)} item{'s' if len(sections) != 1 else ''} need attention"
    EmailMessage(subject=subject, body=body, to=recipients).send()
    return recipients
