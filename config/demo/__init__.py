"""The business `make run` shows: plans with a margin, customers with 60 days of usage, a closed period with its
invoice, a reconciliation run with a discrepancy and rejected events waiting for replay (issue 21).

Everything is written through the services a real installation uses (account creation, recording, period close,
reconciliation), so balances, periods, ledgers and invoices agree as they would in production; seed_demo calls it.
"""
