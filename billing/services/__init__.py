"""Every billing write, in transaction.atomic. Rows are locked in one order: account, wallet, period."""
