"""core.statements.transaction_in_round_trips on real PostgreSQL: BEGIN rides with the block's first statements and
COMMIT with its last, and the block is still one transaction: all of it or none of it, its locks held to the end."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Account, Wallet
from billing.services.locks import account_rows_lock
from billing.services.periods import period_current
from core.statements import Statement, statements_run, transaction_in_round_trips
from tests.factories import AccountFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]

_LOCK_WALLET = "SELECT balance FROM billing_wallet WHERE account_id = %s FOR UPDATE"
_ADD_CREDIT = "UPDATE billing_wallet SET balance = balance + 1 WHERE account_id = %s"


def _balance(account_id: int) -> Decimal:
    return Wallet.objects.get(account_id=account_id).balance


def _status() -> str:
    return connection.connection.info.transaction_status.name


def test_begin_and_commit_ride_with_the_first_and_last_statements():
    account = AccountFactory.create(plan="jive", credits="10")
    with CaptureQueriesContext(connection) as queries, transaction_in_round_trips():
        (locked,) = statements_run(Statement(_LOCK_WALLET, [account.pk]))
        assert _status() == "INTRANS"
        (added,) = statements_run(Statement(_ADD_CREDIT, [account.pk]), commit=True)
        assert _status() == "IDLE"
    assert locked == [(Decimal(10),)] and added == []  # BEGIN's and COMMIT's results are not answered
    assert [q["sql"].split(";\n")[0] for q in queries.captured_queries] == ["BEGIN", _ADD_CREDIT % account.pk]
    assert [q["sql"].split(";\n")[-1] for q in queries.captured_queries][-1] == "COMMIT"
    assert len(queries.captured_queries) == 2
    assert _balance(account.pk) == Decimal(11)


def test_a_block_without_a_commit_statement_commits_when_it_ends():
    account = AccountFactory.create(plan="jive", credits="10")
    with CaptureQueriesContext(connection) as queries, transaction_in_round_trips():
        statements_run(Statement(_ADD_CREDIT, [account.pk]))
    assert [q["sql"] for q in queries.captured_queries][-1] == "COMMIT"
    assert _status() == "IDLE" and _balance(account.pk) == Decimal(11)


def test_an_exception_rolls_everything_back_and_frees_the_locks():
    account = AccountFactory.create(plan="jive", credits="10")
    with pytest.raises(RuntimeError), transaction_in_round_trips():
        statements_run(Statement(_LOCK_WALLET, [account.pk]), Statement(_ADD_CREDIT, [account.pk]))
        Wallet.objects.filter(account_id=account.pk).update(held=Decimal(3))  # an ORM write inside the block
        raise RuntimeError("the caller fails half-way")
    assert _status() == "IDLE"
    wallet = Wallet.objects.get(account_id=account.pk)
    assert (wallet.balance, wallet.held) == (Decimal(10), Decimal(0))
    locked_elsewhere: list[bool] = []

    def other() -> None:  # another connection takes the wallet's lock at once: it was released
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                cursor.execute(_LOCK_WALLET, [account.pk])
                locked_elsewhere.append(True)
        finally:
            connection.close()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(10)
    assert locked_elsewhere == [True]


def test_a_failing_statement_rolls_back_what_the_block_did_before_it():
    account = AccountFactory.create(plan="jive", credits="10")
    with pytest.raises(Exception, match="division by zero"), transaction_in_round_trips():
        statements_run(Statement(_ADD_CREDIT, [account.pk]))
        statements_run(Statement("SELECT 1 / 0"), commit=True)
    assert _status() == "IDLE" and _balance(account.pk) == Decimal(10)


def test_an_orm_statement_first_sends_begin_before_it_so_the_block_stays_one_transaction():
    account = AccountFactory.create(plan="jive", credits="10")
    with pytest.raises(RuntimeError), transaction_in_round_trips():
        Wallet.objects.filter(account_id=account.pk).update(held=Decimal(3))
        assert _status() == "INTRANS"
        raise RuntimeError("undo it")
    assert _balance(account.pk) == Decimal(10) and Wallet.objects.get(account_id=account.pk).held == Decimal(0)


def test_blocks_do_not_nest_and_the_outer_one_is_rolled_back():
    account = AccountFactory.create(plan="jive", credits="10")
    with pytest.raises(RuntimeError, match="do not nest"), transaction_in_round_trips():
        statements_run(Statement(_ADD_CREDIT, [account.pk]))
        with transaction_in_round_trips():
            statements_run(Statement(_ADD_CREDIT, [account.pk]), commit=True)
    assert _status() == "IDLE" and _balance(account.pk) == Decimal(10)


def test_inside_an_atomic_block_it_is_a_plain_savepoint():
    account = AccountFactory.create(plan="jive", credits="10")
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction_in_round_trips():
            statements_run(Statement(_ADD_CREDIT, [account.pk]), commit=True)  # commit=True is not ours to give
            assert connection.in_atomic_block
            raise RuntimeError("undo the savepoint")
        statements_run(Statement(_ADD_CREDIT, [account.pk]))
        assert _status() == "INTRANS"
    assert _balance(account.pk) == Decimal(11)


def test_a_new_accounts_first_authorize_opens_its_period_and_is_decided_in_the_folded_transaction(api_client_for):
    account = AccountFactory.create(plan="jive", credits="10")
    assert account_rows_lock(account_id=account.pk, at=timezone.now()) is None  # no period in force yet
    client = api_client_for(account)
    body = {"request_id": "first", "model": "gpt-4o-mini", "input_tokens": 1000, "max_output_tokens": 500}
    answer = client.post("/api/usage/authorize", body, format="json").json()
    assert answer["allowed"] is True
    assert period_current(account=Account.objects.get(pk=account.pk), as_of=timezone.now()).messages == 0
    assert Wallet.objects.get(account_id=account.pk).held == Decimal(answer["held_credits"])
    assert _status() == "IDLE"


def test_on_commit_and_nested_blocks_work_inside_it_as_in_any_atomic_block():
    ran: list[Decimal] = []
    account = AccountFactory.create(plan="jive", credits="10")
    with transaction_in_round_trips():
        statements_run(Statement(_ADD_CREDIT, [account.pk]))
        transaction.on_commit(lambda: ran.append(_balance(account.pk)))
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint
            statements_run(Statement(_ADD_CREDIT, [account.pk]), commit=True)  # not the outer block's to commit
            raise RuntimeError("undo the savepoint")
        assert ran == [] and _status() == "INTRANS"
        statements_run(Statement(_ADD_CREDIT, [account.pk]), commit=True)
        assert ran == [] and _status() == "IDLE"
    assert ran == [Decimal(12)]  # after the COMMIT, once


def test_a_statement_after_the_commit_runs_in_a_transaction_of_its_own():
    account = AccountFactory.create(plan="jive", credits="10")
    with CaptureQueriesContext(connection) as queries, pytest.raises(RuntimeError), transaction_in_round_trips():
        statements_run(Statement(_ADD_CREDIT, [account.pk]), commit=True)
        Wallet.objects.filter(account_id=account.pk).update(held=Decimal(3))
        assert _status() == "INTRANS"
        raise RuntimeError("undo the second transaction only")
    assert _balance(account.pk) == Decimal(11) and Wallet.objects.get(account_id=account.pk).held == Decimal(0)
    assert [q["sql"].split(";\n")[0] for q in queries.captured_queries] == ["BEGIN", "BEGIN", "ROLLBACK"]
