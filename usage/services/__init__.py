"""Usage writes: recording events, reservations. Rows are locked in one order: account, wallet, period."""
