"""Cache databases on a server: the migrated scratch databases that cache.py keeps.

An entry's database of a bind is `migcheck_c<key>_<bind>`, a copy of the run's scratch database; a
run restores it by recreating its scratch database from it. On PostgreSQL a copy is `CREATE
DATABASE … TEMPLATE`. MariaDB (10.5 on: it keeps a comment per database) has no template databases:
each table is created from its `SHOW CREATE TABLE` and filled with `INSERT … SELECT`, the fastest
copy measured that keeps foreign keys (`CREATE TABLE … LIKE` drops them); a database that holds
anything else (a view, a trigger, a routine, an event, a sequence, whose definitions name their
database) is not kept. MySQL and older MariaDB releases are not cached. The manifest stays in the
local cache directory and names these databases. Every copy, replacement and drop of an entry's
databases holds a lock keyed on the entry (PostgreSQL refuses to copy a database anyone is
connected to): two runs never use one entry at once (the second waits up to WAIT seconds, then runs
cold). The app never reaches a cache database: the guard lets it connect to
its run's scratch databases only, and the copies run on migcheck's admin connection. Each cache
database's comment says when a run last used it, so that a database no manifest names any more
(another machine's cache, one removed by hand) is dropped once it is AGE old, or when SERVER_KEEP
entries were used since; the killed-run reclaim (servers.py) only ever drops `migcheck_r…` databases.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

import sqlalchemy as sa

from migcheck import compat
from migcheck.databases.servers import (
    MAX_NAME,
    Server,
    database_names,
    describe_error,
    drop_database,
    quote_name,
)

AGE = 14 * 24 * 3600  # a cache database no run used for this long is dropped
SERVER_KEEP = 20  # cache entries kept on one server, of all projects
WAIT = 10  # seconds a run waits for another run's use of an entry (a copy takes well under one)
_NAME = re.compile(r"migcheck_c([0-9a-f]{12})_")
_LOCK_CLASS = 0x6D64  # the advisory lock class of cache entries (0x6D63: runs, servers.py)
_USED = re.compile(r"migcheck cache, last used at (\d+)")


def supported(server: Server) -> bool:
    """PostgreSQL and MariaDB 10.5 on, in databases migcheck creates (in a database given in the URL
    it creates none)."""
    return not server.given and _keeps(server.admin.dialect)  # known: server.open() connected


def _keeps(dialect: sa.engine.Dialect) -> bool:
    version = tuple((dialect.server_version_info or ())[:2])
    return dialect.name == "postgresql" or (compat.is_mariadb(dialect) and version >= (10, 5))


def identity(server: Server) -> list[str]:
    """What a cache entry's databases depend on besides the project: which server, which version,
    and the user, who owns them (another user may neither copy nor drop them)."""
    version = server.admin.dialect.server_version_info  # known: server.open() connected
    return [server.backend, str(server.where.host), str(server.where.port), repr(version),
            str(server.url.username)]


def names(key: str, binds: Iterable[str | None]) -> dict[str | None, str]:
    """The cache databases of an entry (`key`: 12 hex digits), one per bind."""
    found: dict[str | None, str] = {}
    for bind in binds:
        label = "default" if bind is None else re.sub(r"[^a-z0-9_]", "_", bind.lower())
        name = f"migcheck_c{key}_{label}"[:MAX_NAME]
        if name in found.values():  # two binds alike once shortened
            name = f"{name[:MAX_NAME - 4]}_{len(found)}"
        found[bind] = name
    return found


def save(server: Server, key: str, databases: dict[str | None, str]) -> bool:
    """Copy the run's scratch databases into the entry's `databases` (bind -> name), replacing
    them. The app's engines must be disposed first. False (nothing kept) if the run's statements
    created roles, which live outside the database (and are dropped at the end of the run), or if a
    copy failed."""
    if server.named_roles:
        return False
    try:
        with server.connect_admin() as connection:
            if not _lock(connection, key):
                return False
            try:
                for bind, name in databases.items():
                    drop_database(connection, name)
                    _copy(connection, server.names[bind], name)
                    _mark_used(connection, name)
            finally:
                _unlock(connection, key)
    except (sa.exc.DBAPIError, _NotCopied):
        with server.connect_admin() as connection:  # a half-made entry is never kept
            for name in databases.values():
                drop_database(connection, name)
        return False
    return True


def restore(server: Server, key: str, databases: dict[str | None, str]) -> str | None:
    """Recreate the run's scratch databases from the entry's. None when done; else why not:
    "busy" (another run uses the entry: this one runs cold) or "gone" (a database vanished: the
    entry is not to be trusted)."""
    with server.connect_admin() as connection:
        if not _lock(connection, key):
            return "busy"
        try:
            if not set(databases.values()) <= database_names(connection):
                return "gone"
            try:
                for bind, name in databases.items():
                    drop_database(connection, server.names[bind])
                    _copy(connection, name, server.names[bind])
                    _mark_used(connection, name)
            except (sa.exc.DBAPIError, _NotCopied):  # the walk starts from empty scratch databases again
                for scratch in server.names.values():
                    drop_database(connection, scratch)
                    compat.exec_sql(connection, f"CREATE DATABASE {quote_name(connection, scratch)}")
                return "gone"
        finally:
            _unlock(connection, key)
    return None


def drop(server: Server, key: str, databases: Iterable[str]) -> list[str]:
    """Drop an evicted entry's databases, unless a run is using them (then the age rule will), or
    they are another user's; returns those dropped."""
    dropped = []
    with server.connect_admin() as connection:
        if not _lock(connection, key, wait=False):
            return []
        try:
            for name in databases:
                try:
                    drop_database(connection, name)
                except sa.exc.DBAPIError:  # not the owner: left to the user who made it
                    continue
                dropped.append(name)
        finally:
            _unlock(connection, key)
    return dropped


def evict_old(server: Server) -> None:
    """Drop the cache entries no run used for AGE (or never marked, after a failed copy), and all
    but the SERVER_KEEP most recently used on the server: a project checked out at a new path each
    time (a CI runner) makes a new entry each time."""
    entries: dict[str, list[str]] = {}
    used: dict[str, int] = {}
    with server.connect_admin() as connection:
        for name, comment in _list(connection):
            key = _NAME.match(name)[1]  # type: ignore[index]
            entries.setdefault(key, []).append(name)
            mark = _USED.match(comment or "")
            used[key] = min(used.get(key, 1 << 62), int(mark[1]) if mark else 0)
    newest = sorted(entries, key=used.__getitem__, reverse=True)
    for key in newest[SERVER_KEEP:] + [k for k in newest[:SERVER_KEEP] if used[k] < time.time() - AGE]:
        drop(server, key, entries[key])


def clear(server: Server) -> list[str]:
    """Drop migcheck's cache databases on the server (not one a run is copying at that moment, nor
    another user's); returns their names."""
    with server.connect_admin() as connection:
        names = [name for name, _ in _list(connection)] if _keeps(connection.dialect) else []
    dropped = []
    for name in names:
        dropped += drop(server, _NAME.match(name)[1], [name])  # type: ignore[index]
    return dropped


def _list(connection: sa.engine.Connection) -> list[tuple[str, str | None]]:
    """migcheck's cache databases on the server, with their comments."""
    if connection.dialect.name == "postgresql":
        query = ("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
                 " WHERE datname ~ '^migcheck_c[0-9a-f]{12}_' ORDER BY datname")
    else:
        query = ("SELECT schema_name, schema_comment FROM information_schema.schemata"
                 " WHERE schema_name REGEXP '^migcheck_c[0-9a-f]{12}_' ORDER BY schema_name")
    return [(str(name), comment) for name, comment in compat.exec_sql(connection, query)]


class _NotCopied(Exception):
    """A MariaDB database holding what a copy of its tables would not reproduce."""


def _copy(connection: sa.engine.Connection, source: str, target: str) -> None:
    quoted_source, quoted_target = quote_name(connection, source), quote_name(connection, target)
    if connection.dialect.name == "postgresql":
        compat.exec_sql(connection, f"CREATE DATABASE {quoted_target} TEMPLATE {quoted_source}")
        return
    tables = list(compat.exec_sql(connection, "SELECT table_name, table_type FROM information_schema.tables"
                                              " WHERE table_schema = %s ORDER BY table_name", (source,)))
    if any(kind != "BASE TABLE" for _, kind in tables) or _has_code(connection, source):
        raise _NotCopied(source)
    columns: dict[str, list[str]] = {}  # each table's columns but generated ones, in order
    for table, column in compat.exec_sql(
            connection, "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema"
                        " = %s AND generation_expression IS NULL ORDER BY table_name, ordinal_position",
            (source,)):
        columns.setdefault(str(table), []).append(quote_name(connection, str(column)))
    compat.exec_sql(connection, f"CREATE DATABASE {quoted_target}")
    compat.exec_sql(connection, f"USE {quoted_target}")  # where SHOW CREATE TABLE's names are meant
    # tables and rows in any order; a 0 in an AUTO_INCREMENT column stays 0 (as mysqldump has it)
    compat.exec_sql(connection, "SET @migcheck_sql_mode = @@sql_mode, SESSION foreign_key_checks = 0, "
                                "SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
    try:
        for table, _ in tables:
            quoted, listed = quote_name(connection, str(table)), ", ".join(columns[str(table)])
            [(_, create)] = compat.exec_sql(connection, f"SHOW CREATE TABLE {quoted_source}.{quoted}")
            compat.exec_sql(connection, create)
            compat.exec_sql(connection, f"INSERT INTO {quoted_target}.{quoted} ({listed}) "
                                        f"SELECT {listed} FROM {quoted_source}.{quoted}")
    finally:
        compat.exec_sql(connection, "SET SESSION foreign_key_checks = 1, "
                                    "SESSION sql_mode = @migcheck_sql_mode")


def _has_code(connection: sa.engine.Connection, database: str) -> bool:
    """Whether a MariaDB database holds routines, triggers or events."""
    return bool(compat.exec_sql(connection, """SELECT
        (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = %s)
      + (SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = %s)
      + (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = %s)""",
                                (database, database, database)).scalar())


def _mark_used(connection: sa.engine.Connection, name: str) -> None:
    comment = f"'migcheck cache, last used at {int(time.time())}'"
    if connection.dialect.name == "postgresql":
        compat.exec_sql(connection, f"COMMENT ON DATABASE {quote_name(connection, name)} IS {comment}")
    else:
        compat.exec_sql(connection, f"ALTER DATABASE {quote_name(connection, name)} COMMENT {comment}")


def _lock(connection: sa.engine.Connection, key: str, wait: bool = True) -> bool:
    """Take the entry's lock for the session: waiting up to WAIT seconds, or not at all."""
    if connection.dialect.name != "postgresql":
        taken = connection.execute(sa.text(f"SELECT GET_LOCK(:name, {WAIT if wait else 0})"),
                                   {"name": f"migcheck_c{key}"}).scalar()
        return bool(taken)
    keys = {"class": _LOCK_CLASS, "object": int(key[:8], 16) - (1 << 31)}
    if not wait:
        return bool(connection.execute(sa.text("SELECT pg_try_advisory_lock(:class, :object)"), keys)
                    .scalar())
    compat.exec_sql(connection, f"SET lock_timeout = '{WAIT}s'")
    try:
        connection.execute(sa.text("SELECT pg_advisory_lock(:class, :object)"), keys)
    except sa.exc.OperationalError as exc:  # lock_not_available
        if "lock timeout" not in describe_error(exc):
            raise
        return False
    finally:
        compat.exec_sql(connection, "SET lock_timeout = 0")
    return True


def _unlock(connection: sa.engine.Connection, key: str) -> None:
    if connection.dialect.name != "postgresql":
        connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": f"migcheck_c{key}"})
        return
    connection.execute(sa.text("SELECT pg_advisory_unlock(:class, :object)"),
                       {"class": _LOCK_CLASS, "object": int(key[:8], 16) - (1 << 31)})
