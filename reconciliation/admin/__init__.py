"""The reconciliation console: runs with their match rate, a run's lines by status, an upload form, the lines as CSV,
the implied-price action, and the reports (margin per period; provider actual against our calculation by month).

Runs and lines are written by the reconciliation services only, so they are read-only here; the upload form and the
action call the services. Amounts on pages are rounded for display; the CSV carries them unrounded.
"""

from reconciliation.admin import lines, runs

__all__ = ["lines", "runs"]
