"""Errors that are not the migrations' fault: the scratch area's disk is full, memory ran out, the
connection to the server was lost.

A migration that fails for one of these would fail the same way whatever it did, so it is no finding
about the migrations: the run stops with exit 2, "could not check", naming the cause.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator

import sqlalchemy as sa

from migcheck.errors import UsageError

_DISK_FULL = "disk full"
_NO_MEMORY = "out of memory"
_LOST = "connection lost"
# PostgreSQL SQLSTATEs: class 08 (connection exception) and the shutdowns are a lost connection.
_PG_STATES = {"53100": _DISK_FULL, "53200": _NO_MEMORY, "57P01": _LOST, "57P02": _LOST, "57P03": _LOST}
_SQLITE_FULL = 13  # SQLITE_FULL, the primary result code
# MySQL/MariaDB error numbers.
_MYSQL_ERRORS = {1021: _DISK_FULL, 1037: _NO_MEMORY, 1038: _NO_MEMORY, 1041: _NO_MEMORY,
                 2006: _LOST, 2013: _LOST, 2055: _LOST}


class CouldNotCheck(UsageError):
    """The environment failed the run, not the project."""


def check(exc: BaseException, where: str, scratch_dir: str, server: str | None) -> None:
    """Raise CouldNotCheck if `exc` (raised while `where`) is a fault of the environment.

    `scratch_dir`: the directory of the SQLite scratch databases; `server`: the --db-url server's
    backend name, if any."""
    for error in _chain(exc):
        cause = _cause(error)
        if cause is None:
            continue
        shown = _describe(error)
        if cause == _DISK_FULL:
            place = (f"the {server} server's disk is full" if server
                     else f"the disk under migcheck's scratch databases ({scratch_dir}) is full")
            fix = ("free space there" if server else
                   "free space there, or set TMPDIR to a directory on a larger filesystem")
        elif cause == _NO_MEMORY:
            on_server = server and not isinstance(error, MemoryError)
            place = f"out of memory on the {server} server" if on_server else "out of memory"
            fix = "free memory or give the job more"
        else:
            place = f"the connection to the {server or 'database'} server was lost"
            fix = "check that the server is up and reachable (and was not restarted)"
        raise CouldNotCheck(f"could not check: {place} ({shown}, while {where}). This is not a problem "
                            f"of your migrations: {fix}, and run migcheck again.") from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        pending += [error.__cause__, error.__context__, getattr(error, "orig", None)]


def _cause(error: BaseException) -> str | None:
    if isinstance(error, MemoryError):
        return _NO_MEMORY
    if isinstance(error, OSError) and error.errno is not None:
        return {errno.ENOSPC: _DISK_FULL, errno.EDQUOT: _DISK_FULL, errno.ENOMEM: _NO_MEMORY}.get(error.errno)
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return _LOST
    if isinstance(error, sqlite3.Error):  # by message: sqlite_errorcode is Python 3.11+
        if str(error) == "database or disk is full" or getattr(
                error, "sqlite_errorcode", None) == _SQLITE_FULL:
            return _DISK_FULL
        return _NO_MEMORY if str(error) == "out of memory" else None
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str):
        return _LOST if state.startswith("08") else _PG_STATES.get(state)
    args = getattr(error, "args", ())
    if type(error).__module__.split(".")[0] in ("pymysql", "MySQLdb", "mysql") and args \
            and isinstance(args[0], int):
        return _MYSQL_ERRORS.get(args[0])
    return None


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}".rstrip(": ")
