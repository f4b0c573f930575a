"""What SQLAlchemy's reflection of a SQLite schema returned, kept between runs for the next compare.

A warm run compares the models with the cached head database, whose schema an earlier run reflected
already. On SQLite that reflection is hundreds of PRAGMA queries (770 at N=200/M=40: a fifth of the
drift check of a warm run), and their results depend on nothing but the schema's SQL (sqlite_master,
in order), the SQLite library and SQLAlchemy. So the results SQLAlchemy caches per inspector (its
`info_cache`: columns, indexes, keys of each table) are kept as JSON under a hash of those, and the
next inspector that meets the same schema starts from them: no entry is ever used for another
schema. Each result is kept as SQLAlchemy first returned it, before Alembic's and the app's
column_reflect listeners edit it in place. A result that JSON cannot hold exactly is not kept, and
is queried again: a type is kept as the SQL that declares it only where reflecting that SQL gives
the same type back.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import quoted_name

from migcheck import compat, kept

FORMAT = 1
KEEP = 8  # schemas kept: the head of a few branches, and the one before a new revision


class _Unkept(Exception):
    """A value JSON cannot hold exactly."""


class _Recording(dict[Any, Any]):
    """An inspector's info_cache that keeps, as JSON, each result SQLAlchemy's reflection adds to it."""

    def __init__(self, known: dict[Any, Any], dialect: sa.engine.Dialect) -> None:
        super().__init__(known)
        self.dialect = dialect
        self.added: list[list[Any]] = []

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if isinstance(key, tuple):  # SQLAlchemy's (method, names, options); Alembic's keys are strings
            with suppress(_Unkept):
                self.added.append([_encode(key, self.dialect), _encode(value, self.dialect)])


@contextmanager
def reusing(connection: sa.engine.Connection, directory: Path | None) -> Iterator[dict[Any, Any] | None]:
    """The info_cache for an inspector on `connection`: what was kept for its schema, and what
    reflection adds saved at the end. None (no reuse) without a directory, and where a schema's
    reflection cannot be kept (see _fingerprint)."""
    key = _fingerprint(connection) if directory is not None else None
    if key is None or directory is None:
        yield None
        return
    path = directory / f"{key[:24]}.json"
    stored = kept.read(path)
    entries = stored["entries"] if isinstance(stored, dict) and stored.get("key") == key else []
    try:
        known = {_decode(k, connection.dialect): _decode(v, connection.dialect) for k, v in entries}
    except (_Unkept, TypeError, ValueError, KeyError, AttributeError):  # not this format's: ignored
        known, entries = {}, []
    cache = _Recording(known, connection.dialect)
    yield cache
    if cache.added:
        kept.write(path, {"key": key, "entries": entries + cache.added})
        _evict(directory)
    elif entries:
        with suppress(OSError):
            os.utime(path)  # recently used: evicted last


def _fingerprint(connection: sa.engine.Connection) -> str | None:
    """A hash of everything reflection on this SQLite connection reads; None on another database,
    with databases attached (their schemas are not hashed), and before SQLAlchemy 2 (its reflection
    edits the results it cached, so a kept copy would not return what a fresh reflection does)."""
    if connection.dialect.name != "sqlite" or not compat.REFLECTION_RESULTS_STABLE:
        return None
    databases = compat.exec_sql(connection, "PRAGMA database_list").fetchall()
    if {row[1] for row in databases} - {"main", "temp"}:
        return None
    schema = [tuple(row) for table in ("sqlite_master", "sqlite_temp_master") for row in compat.exec_sql(
        connection, f"SELECT type, name, tbl_name, sql FROM {table} ORDER BY rowid").fetchall()]
    dialect = type(connection.dialect)
    parts = [str(FORMAT), sqlite3.sqlite_version, sa.__version__, f"{dialect.__module__}.{dialect.__name__}",
             repr(schema)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _encode(value: Any, dialect: sa.engine.Dialect) -> Any:
    if value is None or type(value) in (str, int, float, bool):
        return value
    if type(value) is list:
        return [_encode(v, dialect) for v in value]
    if type(value) is tuple:
        return {"tuple": [_encode(v, dialect) for v in value]}
    if type(value) is dict:
        return {"dict": [[_encode(k, dialect), _encode(v, dialect)] for k, v in value.items()]}
    if isinstance(value, sa.types.TypeEngine):
        try:
            declared = value.compile(dialect=dialect)
        except sa.exc.SQLAlchemyError as exc:  # NullType: a column declared without a type
            raise _Unkept from exc
        if type(declared) is not str or repr(compat.sqlite_type(dialect, declared)) != repr(value):
            raise _Unkept
        return {"type": declared}
    if type(value) is quoted_name:  # a name SQLAlchemy quotes, or never quotes
        return {"quoted": [str(value), value.quote]}
    if type(value) is sa.sql.elements.TextClause:  # a partial index's WHERE
        return {"text": value.text}
    raise _Unkept


def _decode(value: Any, dialect: sa.engine.Dialect) -> Any:
    if value is None or type(value) in (str, int, float, bool):
        return value
    if type(value) is list:
        return [_decode(v, dialect) for v in value]
    [(kind, content)] = value.items()
    if kind == "tuple":
        return tuple(_decode(v, dialect) for v in content)
    if kind == "dict":
        return {_decode(k, dialect): _decode(v, dialect) for k, v in content}
    if kind == "type":
        return compat.sqlite_type(dialect, content)
    if kind == "quoted":
        return quoted_name(*content)
    if kind == "text":
        return sa.text(content)
    raise _Unkept


def _evict(directory: Path) -> None:
    """Keep the KEEP most recently used schemas."""
    with suppress(OSError):
        files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP:]:
            old.unlink()
