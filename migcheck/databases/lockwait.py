"""The lock-wait watchdog of a PostgreSQL --db-url run: a revision that waits for itself is cut short.

A revision that reads or writes through the app's session (`db.session`, `db.engine`) uses a second
connection while the migration's own transaction holds locks (after an ALTER TABLE, an
AccessExclusiveLock on the table until the transaction ends): the second connection waits for the
lock, the migration waits for the second connection's query, and `flask db upgrade` hangs forever.
So would the walk, and psycopg2 waits in C, where no signal handler runs.

A thread polls the server on an admin connection of migcheck's own. A session of this run (one the
process opened to a scratch database, known by its backend pid) that has waited for a lock longer
than GRACE, where every session holding it is this run's too and sits idle in a transaction (waiting
for this process, which waits for the query), is cancelled: the statement raises at the revision's
line, and the upgrade check reports the deadlock that was seen here. A lock held by any other
session is never the run's fault: that wait is left alone.

On SIGINT / SIGTERM (seen through `signal.set_wakeup_fd`) it cancels every running query of the run,
so that the main thread gets back to Python, runs the handler and drops the scratch databases.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from migcheck import compat
from migcheck.databases.servers import Server

INTERVAL = 0.5  # seconds between polls: one small catalog query
GRACE = 1.0  # how long a wait on the run's own idle transaction lasts before it is cut

# Each session of the given ones waiting for a lock in the given databases, the lock, and each
# session that holds it (pg_blocking_pids only runs for the waiting ones).
_WAITS = """
SELECT w.pid, w.query_start, w.query, w.datname, l.locktype, l.mode, l.relation,
       b.pid, b.state, b.query
FROM pg_stat_activity w
JOIN pg_locks l ON l.pid = w.pid AND NOT l.granted
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS holder(pid)
LEFT JOIN pg_stat_activity b ON b.pid = holder.pid
WHERE w.wait_event_type = 'Lock' AND w.pid = ANY(%(pids)s) AND w.datname = ANY(%(names)s)
"""
_RUNNING = ("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
            "WHERE pid = ANY(%(pids)s) AND datname = ANY(%(names)s) AND state = 'active'")
_QUERY_CANCELED = "57014"
_IDLE = ("idle in transaction", "idle in transaction (aborted)")


class Deadlock(NamedTuple):
    """A query of the run cancelled because it waited for a lock the run itself held."""
    lock: str  # "AccessShareLock on table post", "ShareLock on a transaction (a row)"
    waiting: str  # the cancelled statement
    holding: str  # the last statement of the session that held the lock (idle in its transaction)


class Watchdog:
    """Polls from its own thread while the scratch area lives; PostgreSQL only."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pids: set[int] = set()  # backends of the run's connections (the admin's too: never waiting)
        # backend -> the last statement run through SQLAlchemy (the revision's, not migcheck's raw reads)
        self.statements: dict[int, str] = {}
        self.cancelled: list[Deadlock] = []
        self._seen: dict[tuple[int, Any], float] = {}  # (pid, query_start) -> when first seen waiting
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wakeup: tuple[int, int] | None = None  # (read, write) ends of the signal pipe
        self._previous_wakeup = -1

    def start(self) -> None:
        sa.event.listen(sa.engine.Engine, "connect", self._connected)
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._executing)
        if threading.current_thread() is threading.main_thread():
            read, write = os.pipe()
            os.set_blocking(write, False)
            self._previous_wakeup = signal.set_wakeup_fd(write)
            if self._previous_wakeup != -1:  # another one's (an app's event loop): left as it was
                signal.set_wakeup_fd(self._previous_wakeup)
                os.close(read)
                os.close(write)
            else:
                self._wakeup = (read, write)
        self._thread = threading.Thread(target=self._run, name="migcheck-lockwait", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:  # not started: the server could not be opened
            return
        sa.event.remove(sa.engine.Engine, "connect", self._connected)
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self._executing)
        self._stop.set()
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            os.write(self._wakeup[1], b"\0")  # wakes the thread's select at once
        if self._thread is not None:
            self._thread.join()
        if self._wakeup is not None:
            for end in self._wakeup:
                os.close(end)
            self._wakeup = None

    def take(self, error: BaseException) -> Deadlock | None:
        """The deadlock cut short that `error` is the cancel of, once (the upgrade check reports it)."""
        return self.cancelled.pop() if self.pending(error) else None

    def _connected(self, dbapi_connection: Any, connection_record: Any) -> None:
        pid = compat.backend_pid(dbapi_connection)
        if pid is not None:
            self.pids.add(pid)

    def _executing(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        pid = compat.backend_pid(getattr(cursor, "connection", None))
        if pid is not None:
            self.statements[pid] = statement

    def pending(self, error: BaseException) -> bool:
        """Whether `error` is the cancel of a deadlock cut short here, not taken yet."""
        orig = getattr(error, "orig", None)
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)  # psycopg 3 / 2
        return bool(self.cancelled) and state == _QUERY_CANCELED

    def _run(self) -> None:
        connection: sa.engine.Connection | None = None
        try:
            while not self._stop.is_set():
                interrupted = self._wait()
                if self._stop.is_set():
                    return
                try:
                    connection = connection or self.server.admin.connect()
                    if interrupted:
                        self._cancel_running(connection)
                    else:
                        self._poll(connection)
                except sa.exc.DBAPIError:  # the server went away: the run's own error says so
                    if connection is not None:
                        connection.invalidate()
                        connection.close()
                    connection = None
        finally:
            if connection is not None:
                connection.close()

    def _wait(self) -> bool:
        """Sleep one interval; True when SIGINT or SIGTERM came meanwhile."""
        if self._wakeup is None:
            self._stop.wait(INTERVAL)
            return False
        ready, _, _ = select.select([self._wakeup[0]], [], [], INTERVAL)
        if not ready:
            return False
        received = os.read(self._wakeup[0], 64)
        return any(number in (signal.SIGINT, signal.SIGTERM) for number in received)

    def _names(self) -> list[str]:
        return list(self.server.names.values())

    def _cancel_running(self, connection: sa.engine.Connection) -> None:
        compat.exec_sql(connection, _RUNNING, {"pids": sorted(self.pids), "names": self._names()})

    def _poll(self, connection: sa.engine.Connection) -> None:
        if not self.pids:
            return
        rows = compat.exec_sql(connection, _WAITS, {"pids": sorted(self.pids), "names": self._names()})
        waits: dict[tuple[int, Any], list[Any]] = {}
        for row in rows:
            waits.setdefault((row[0], row[1]), []).append(row)
        now = time.monotonic()
        self._seen = {key: self._seen.get(key, now) for key in waits}
        for key, holders in waits.items():
            ours = all(row[7] in self.pids and row[8] in _IDLE for row in holders)
            if not ours or now - self._seen[key] < GRACE:
                continue
            _, _, query, database, locktype, mode, relation, holder, _, held_by = holders[0]
            held_by = self.statements.get(holder, held_by)
            what = self._relation(database, relation) if relation else _LOCKTYPES.get(locktype, locktype)
            # told before the cancel: the revision's error may reach the upgrade check at once
            deadlock = Deadlock(f"{mode} on {what}", " ".join(str(query).split()),
                                " ".join(str(held_by).split()))
            self.cancelled.append(deadlock)
            cancelled = compat.exec_sql(connection, "SELECT pg_cancel_backend(%(pid)s)", {"pid": key[0]})
            if not cancelled.scalar():  # the query had ended
                self.cancelled.remove(deadlock)

    def _relation(self, database: str, oid: int) -> str:
        """`table post`: pg_class is read in the scratch database itself (no lock on the table)."""
        engine = sa.create_engine(compat.url_with(self.server.url, database=database), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                row = compat.exec_sql(connection, "SELECT relname, relkind FROM pg_class WHERE oid = %(oid)s",
                                      {"oid": oid}).fetchone()
        except sa.exc.DBAPIError:
            row = None
        finally:
            engine.dispose()
        if row is None:  # created by the waiting transaction's holder, not committed: not visible
            return f"a relation created in the same transaction (oid {oid})"
        return f"{'index' if row[1] in ('i', 'I') else 'table'} {row[0]}"


_LOCKTYPES = {"transactionid": "a row the migration's transaction changed", "tuple": "a row"}
