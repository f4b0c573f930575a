"""Going back to a state the round trip passed, without rebuilding the database from base.

A mark is a savepoint in the transaction the migrations run in; restoring it rolls back whatever
ran since, DDL included. That holds where DDL is transactional: PostgreSQL, and SQLite once the
walk runs in one transaction (roundtrip.py asks Alembic for that: `transactional_ddl=True`, after
which the savepoint is the transaction's start as far as the pysqlite driver knows). MySQL and
MariaDB commit at every DDL statement: no mark there, and the walk rebuilds from base instead.

A revision can end the transaction a mark lives in (`op.get_context().autocommit_block()`, a COMMIT
of its own): then the mark is gone, and `restore` says so instead of failing, since on PostgreSQL
a failed statement would abort the migrations' transaction. After a revision's own
`op.execute("commit")`, psycopg2 still counts itself in a transaction and sends no BEGIN: the
statements that follow run outside any, where a savepoint cannot be taken, so no mark is taken
there (the walk rebuilds instead, as on MySQL). These functions are the walk's
only way back; another way (e.g. a clone of a server database kept per revision) fits behind them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, NamedTuple

import sqlalchemy as sa

from migcheck import compat

_NAME = "migcheck_before_revision"
_TRANSACTIONAL = ("sqlite", "postgresql")


class Mark(NamedTuple):
    transaction: Any  # what tells the transaction the savepoint lives in from a later one
    name: str


def take(connection: sa.engine.Connection, name: str = _NAME) -> Mark | None:
    """A mark of the state now, or None where rolling back would not undo DDL. Marks of different
    `name`s nest."""
    if connection.dialect.name not in _TRANSACTIONAL or compat.outside_transaction(connection):
        return None
    _run(connection, f"SAVEPOINT {name}")  # on SQLite outside a transaction, it starts one
    return Mark(_transaction(connection), name)


def holds(connection: sa.engine.Connection, mark: Mark) -> bool:
    """Whether the transaction `mark` lives in is still the one open."""
    return _transaction(connection) == mark.transaction


def restore(connection: sa.engine.Connection, mark: Mark) -> bool:
    """Back to the state at `mark`, which is then gone; False when that cannot be done (the
    transaction it lived in ended), and nothing changed."""
    if not holds(connection, mark):
        return False
    try:
        _run(connection, f"ROLLBACK TO SAVEPOINT {mark.name}")
    except sqlite3.OperationalError:  # "no such savepoint": SQLite's statement fails alone
        return False
    _run(connection, f"RELEASE SAVEPOINT {mark.name}")
    return True


def forget(connection: sa.engine.Connection, mark: Mark) -> None:
    """The state at `mark` is no longer needed (what ran since stays)."""
    if holds(connection, mark):
        # SQLite: gone with a COMMIT and a new BEGIN of the revision's own, and the statement fails alone
        with contextlib.suppress(sqlite3.OperationalError):
            _run(connection, f"RELEASE SAVEPOINT {mark.name}")


def _transaction(connection: sa.engine.Connection) -> Any:
    """Something equal for two calls in the same transaction only (on SQLite: in one at all; a
    savepoint that a COMMIT and a new BEGIN took away fails alone there, see restore)."""
    if connection.dialect.name == "sqlite":
        return bool(connection.connection.in_transaction)
    if compat.outside_transaction(connection):
        return None  # no mark's: take() takes none there
    cursor = connection.connection.cursor()
    try:
        # The transaction's id, never reused (its start time, now(), can be a later one's too at
        # the clock's resolution); assigned here if nothing was written yet (txid_current_if_assigned
        # would say NULL then, and is PostgreSQL 10+).
        cursor.execute("SELECT txid_current()")
        row = cursor.fetchone()
        return row[0] if row else None
    finally:
        cursor.close()


def _run(connection: sa.engine.Connection, statement: str) -> None:
    """On the driver's own cursor: SQLAlchemy keeps no account of these savepoints."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()
