"""What the tables hold, for the round trip: a downgrade must give back the rows it found.

A snapshot is, per table that has rows, its column names and the multiset of its rows. Tables
without rows (in a plain walk nearly all of them: only data migrations insert rows) cost one
`EXISTS` in a single query for all tables, so the empty case stays nearly free. Rows are compared
only over the columns that existed before the revision, and in no particular order. A table with
more than VALUES_UP_TO rows (a big lookup table a data migration fills) is compared by its count
only, so that it does not slow every later revision's round trip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa

_CHUNK = 400  # columns in one SELECT (SQLite allows 2000 by default, MySQL 4096)
VALUES_UP_TO = 1000


class Rows(NamedTuple):
    columns: tuple[str, ...]
    total: int
    rows: Counter[tuple[Any, ...]] | None  # None: more than VALUES_UP_TO rows, compared by count


class Contents(NamedTuple):
    tables: frozenset[str]  # every table looked at, with or without rows
    filled: dict[str, Rows]  # only the tables that have rows

    def empty(self) -> list[str]:
        return sorted(self.tables - self.filled.keys())


class RowDifference(NamedTuple):
    table: str
    # "left" (more rows than before), "lost" (fewer), "deleted" (fewer, as the upgrade left them) or
    # "changed" (as many, other values)
    kind: str
    number: int  # how many rows more, fewer or changed
    had: int  # how many rows the table had before


def take(connection: sa.engine.Connection, tables: Iterable[str]) -> Contents:
    names = sorted(tables)
    with_rows = _with_rows(connection, names)
    return Contents(frozenset(names), {table: _rows(connection, table) for table in with_rows})


def differences(before: Contents, after: Contents, between: Contents | None = None) -> list[RowDifference]:
    """How the rows of the tables that existed before differ afterwards (over their old columns).

    `between`: the rows on the way (after the upgrade, for a downgrade). Rows that were gone there
    already (the upgrade deleted them, or dropped their table) and that are still gone are
    "deleted": the upgrade's doing, not the downgrade's; only the rest is "lost"."""
    found = []
    for table in sorted(before.tables & after.tables):
        old = before.filled.get(table)
        new = after.filled.get(table)
        if old is None and new is None:
            continue
        old_count, new_count = (old.total if old else 0), (new.total if new else 0)
        if new_count > old_count:
            found.append(RowDifference(table, "left", new_count - old_count, old_count))
        elif new_count < old_count:
            kept = _count(between, table) if between is not None else old_count
            deleted = old_count - max(kept, new_count)
            if deleted > 0:
                found.append(RowDifference(table, "deleted", deleted, old_count))
            if kept > new_count:
                found.append(RowDifference(table, "lost", kept - new_count, old_count))
        elif old is not None and new is not None and old.rows is not None and new.rows is not None:
            old_rows, new_rows = _project(old, old.columns), _project(new, old.columns)
            if old_rows != new_rows:
                found.append(RowDifference(table, "changed", sum((new_rows - old_rows).values()),
                                           old_count))
    return found


def _count(contents: Contents, table: str) -> int:
    """How many rows a table has (0 if it has none, or is not there)."""
    rows = contents.filled.get(table)
    return rows.total if rows else 0


def _project(rows: Rows, columns: tuple[str, ...]) -> Counter[tuple[Any, ...]]:
    """The rows restricted to `columns` (a column that is gone reads as missing)."""
    assert rows.rows is not None
    if rows.columns == columns:
        return rows.rows
    where = [rows.columns.index(c) if c in rows.columns else None for c in columns]
    projected: Counter[tuple[Any, ...]] = Counter()
    for row, count in rows.rows.items():
        projected[tuple(row[i] if i is not None else _MISSING for i in where)] += count
    return projected


_MISSING = object()


def _with_rows(connection: sa.engine.Connection, tables: list[str]) -> list[str]:
    """The tables that have at least one row: one query for every table, a column for each (a
    plain list of EXISTS is quicker for SQLite to prepare than a compound SELECT, and a prepared
    statement does not outlive a change of schema, which comes with nearly every step)."""
    quote = connection.dialect.identifier_preparer.quote
    found = []
    cursor = connection.connection.cursor()  # the DB-API cursor: this runs twice a revision
    try:
        for start in range(0, len(tables), _CHUNK):
            chunk = tables[start:start + _CHUNK]
            cursor.execute("SELECT " + ", ".join(f"EXISTS (SELECT 1 FROM {quote(table)})" for table in chunk))
            (row,) = cursor.fetchall()
            found += [table for table, filled in zip(chunk, row, strict=True) if filled]
    finally:
        cursor.close()
    return found


def _rows(connection: sa.engine.Connection, table: str) -> Rows:
    quoted = connection.dialect.identifier_preparer.quote(table)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"SELECT * FROM {quoted} LIMIT {VALUES_UP_TO + 1}")
        columns = tuple(str(d[0]) for d in cursor.description)
        fetched = cursor.fetchall()
        if len(fetched) > VALUES_UP_TO:
            cursor.execute(f"SELECT count(*) FROM {quoted}")
            (total,) = cursor.fetchone() or (0,)
            return Rows(columns, int(total), None)
    finally:
        cursor.close()
    return Rows(columns, len(fetched), Counter(tuple(_hashable(v) for v in row) for row in fetched))


def _hashable(value: Any) -> Any:
    """Drivers return JSON as dicts and lists, arrays as lists (and some types as objects of their
    own that cannot be hashed): compare what cannot be hashed by its text."""
    if isinstance(value, memoryview):
        return bytes(value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value
