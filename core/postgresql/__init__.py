"""TokenLedger's PostgreSQL database backend: Django's own, with each transaction's BEGIN sent together with the
transaction's first statement (see base.py)."""
