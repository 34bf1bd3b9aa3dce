"""core.postgresql on real PostgreSQL: a transaction's BEGIN goes out with its first statement, one round trip fewer,
and the transaction is still all or nothing, whatever its first statement is (ORM, savepoint, executemany, COPY, a
named cursor, a statement that fails); and a reused connection is checked without a round trip unless the server
has spoken or hung up since its last answer."""

from __future__ import annotations

import select
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.models import Wallet
from tests.factories import AccountFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]


def _status() -> str:
    return connection.connection.info.transaction_status.name


def _balance(account_id: int) -> Decimal:
    return Wallet.objects.get(account_id=account_id).balance


def _locked_elsewhere(account_id: int) -> bool:
    """Whether another connection finds the account's wallet row locked."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"],
        autocommit=True,
    ) as other:  # fmt: skip
        try:
            other.execute("SELECT 1 FROM billing_wallet WHERE account_id = %s FOR UPDATE NOWAIT", [account_id])
        except psycopg.errors.LockNotAvailable:
            return True
        return False


def test_begin_goes_out_with_the_first_statement_and_the_block_is_one_transaction():
    account = AccountFactory.create(plan="jive", credits="10")
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        wallet = Wallet.objects.select_for_update().get(account_id=account.pk)
        assert _status() == "INTRANS" and _locked_elsewhere(account.pk)
        Wallet.objects.filter(pk=wallet.pk).update(balance=wallet.balance + 1)
    sent = [q["sql"] for q in queries.captured_queries]
    assert sent[0].startswith("BEGIN;\nSELECT") and sent[-1] == "COMMIT" and len(sent) == 3
    assert _status() == "IDLE" and not _locked_elsewhere(account.pk) and _balance(account.pk) == Decimal(11)


def test_a_rolled_back_block_leaves_nothing_and_frees_its_locks():
    account = AccountFactory.create(plan="jive", credits="10")
    with pytest.raises(RuntimeError), transaction.atomic():
        Wallet.objects.filter(account_id=account.pk).update(balance=Decimal(99))
        raise RuntimeError("undo it")
    assert _status() == "IDLE" and _balance(account.pk) == Decimal(10) and not _locked_elsewhere(account.pk)


def test_a_block_that_runs_nothing_sends_nothing():
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as queries:
        with transaction.atomic():
            pass
        with pytest.raises(RuntimeError), transaction.atomic():
            raise RuntimeError("nothing to undo")
    assert queries.captured_queries == [] and _status() == "IDLE"


def test_a_savepoint_first_carries_the_begin_and_rolls_back_alone():
    account = AccountFactory.create(plan="jive", credits="10")
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            Wallet.objects.filter(account_id=account.pk).update(balance=Decimal(99))
            raise RuntimeError("undo the savepoint")
        Wallet.objects.filter(account_id=account.pk).update(held=Decimal(2))
    assert queries.captured_queries[0]["sql"].startswith("BEGIN;\nSAVEPOINT")
    assert _balance(account.pk) == Decimal(10) and Wallet.objects.get(account_id=account.pk).held == Decimal(2)


@pytest.fixture
def probe_table():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE backend_probe (x int)")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE backend_probe")


@pytest.mark.parametrize("first", ["executemany", "copy", "iterator", "composed"])
@pytest.mark.usefixtures("probe_table")
def test_what_cannot_carry_it_sends_begin_alone_and_stays_in_the_transaction(first):
    account = AccountFactory.create(plan="jive", credits="10")
    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            if first == "executemany":
                cursor.executemany("UPDATE billing_wallet SET balance = %s WHERE account_id = %s", [(99, account.pk)])
            elif first == "copy":
                with cursor.cursor.copy("COPY backend_probe (x) FROM STDIN") as copy:
                    copy.write_row((1,))
            elif first == "composed":
                cursor.execute(psycopg.sql.SQL("UPDATE billing_wallet SET balance = 99 WHERE account_id = {}").format(
                    psycopg.sql.Literal(account.pk)))  # fmt: skip
            else:
                assert [w.pk for w in Wallet.objects.filter(account_id=account.pk).iterator(chunk_size=1)]
                Wallet.objects.filter(account_id=account.pk).update(balance=Decimal(99))
        assert _status() == "INTRANS"
        raise RuntimeError("undo it")
    assert _status() == "IDLE" and _balance(account.pk) == Decimal(10)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM backend_probe")
        assert cursor.fetchone() == (0,)


def test_a_first_statement_that_fails_leaves_the_connection_usable():
    account = AccountFactory.create(plan="jive", credits="10")
    for broken in ("SELEC nonsense", "SELECT 1 / 0"):  # refused before BEGIN ran, and after
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(broken)
        assert _status() == "IDLE"
        with transaction.atomic():
            Wallet.objects.filter(account_id=account.pk).update(balance=Decimal(12))
            assert _status() == "INTRANS"
    assert _balance(account.pk) == Decimal(12)


def test_on_commit_runs_after_the_commit_and_not_after_a_rollback():
    ran: list[str] = []
    account = AccountFactory.create(plan="jive", credits="10")
    with transaction.atomic():
        Wallet.objects.filter(account_id=account.pk).update(balance=Decimal(11))
        transaction.on_commit(lambda: ran.append(f"committed {_balance(account.pk)}"))
        assert ran == []
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(lambda: ran.append("rolled back"))
        raise RuntimeError
    assert ran == ["committed 11.000000000000"]


def test_a_cursor_reads_the_statements_result_not_the_begins():
    account = AccountFactory.create(plan="jive", credits="10")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_wallet SET balance = balance + 1 WHERE account_id = %s", [account.pk])
        assert cursor.rowcount == 1
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT balance FROM billing_wallet WHERE account_id = %s", [account.pk])
        assert cursor.fetchall() == [(Decimal(11),)] and cursor.description[0].name == "balance"


# --- the health check (CONN_HEALTH_CHECKS): no round trip while the connection is quiet ---------------------------


@contextmanager
def _wire(sent: list[str]) -> Iterator[None]:
    """The simple-protocol queries this connection puts on the wire meanwhile (libpq's trace of its messages)."""
    client = connection.connection.pgconn
    with tempfile.TemporaryFile() as trace:
        client.trace(trace.fileno())
        client.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            yield
        finally:
            client.untrace()
        trace.seek(0)
        sent += [
            line.split("\t")[-1].strip()[1:-1] for line in trace.read().decode().splitlines() if "\tQuery\t" in line
        ]


def _request_starts() -> None:
    """What Django does at each request's start (close_old_connections): the next statement checks the connection."""
    connection.close_if_unusable_or_obsolete()
    assert connection.connection is not None


def test_a_reused_connection_that_is_quiet_is_checked_without_a_round_trip():
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    connection.ensure_connection()
    _request_starts()
    sent: list[str] = []
    with _wire(sent):
        assert Wallet.objects.count() == 0
    assert sent == ['SELECT COUNT(*) AS "__count" FROM "billing_wallet"']


def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it():
    account = AccountFactory.create(plan="jive", credits="10")
    old_pid = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"],
        autocommit=True,
    ) as other:  # fmt: skip
        assert other.execute("SELECT pg_terminate_backend(%s)", [old_pid]).fetchone() == (True,)
    poller = select.poll()
    poller.register(connection.connection.pgconn.socket, select.POLLIN)
    assert poller.poll(5000), "the server did not close the connection"
    _request_starts()
    sent: list[str] = []
    with _wire(sent):  # the old connection's trace: the check it failed
        assert _balance(account.pk) == Decimal(10)
    assert sent == ["SELECT 1"] and connection.connection.info.backend_pid != old_pid
