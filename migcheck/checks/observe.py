"""What each operation of an in-scope revision really did on the --db-url server, for the safety check.

The safety check predicts from its rules table; on a real server it can also look. PostgreSQL: around
each `op.*` / `batch_op.*` / `op.execute` call, migcheck's own backend reads `pg_locks` (the locks its
transaction holds, DDL being transactional) and `pg_class.relfilenode` (a new one means the table or
index was rewritten), and times the call. Where that settles a rule, the observation replaces the
prediction (a type change that did not rewrite is not flagged; one that did is `safety-table-rewrite`
however it was written), and it gives rules no prediction can: no `lock_timeout` while a dangerous
lock is taken, a lock held through further statements. MySQL/MariaDB: the server is asked whether
each ALTER TABLE on an existing table can run online, on a copy of the table, before the real
statement runs. Batch operations run when their `with` block ends; each is observed then, one by one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple
from unittest import mock

import sqlalchemy as sa
from alembic.operations import ops
from alembic.operations.batch import BatchOperationsImpl

from migcheck.findings import Finding

if TYPE_CHECKING:
    from migcheck.checks.safety import Watch

DIALECTS = ("postgresql", "mysql", "mariadb")
# Locks that block the table's writes (Share, ShareRowExclusive, Exclusive) or also its reads.
DANGEROUS = ("AccessExclusiveLock", "ExclusiveLock", "ShareRowExclusiveLock", "ShareLock")
# Predictions an observation settles on PostgreSQL: whether the table was rewritten.
REWRITE_RULES = ("safety-change-type", "safety-volatile-default")

# Every table and index outside the system schemas (with its table; or only those named, by the
# catalog's index on names), the locks this backend's transaction holds on them, and the
# lock_timeout in effect: one round trip.
_RELATIONS = """
SELECT 'r', CASE WHEN n.nspname = current_schema() THEN c.relname ELSE n.nspname || '.' || c.relname END,
       c.relfilenode::text, c.relkind::text, t.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid
WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
"""
_NAMED = " AND c.relname = ANY(%s)"
_LOCKS = """
UNION ALL
SELECT 'l', CASE WHEN n.nspname = current_schema() THEN c.relname ELSE n.nspname || '.' || c.relname END,
       l.mode, c.relkind::text, NULL
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
UNION ALL
SELECT 't', '', current_setting('lock_timeout'), '', NULL
"""


class _State(NamedTuple):
    files: dict[str, tuple[str, str, str | None]]  # relation -> (relfilenode, relkind, its table)
    locks: dict[str, set[str]]  # relation -> lock modes held
    lock_timeout: str  # "0": none


class Observation(NamedTuple):
    """What one operation did to relations that existed before its revision."""
    took: dict[str, str]  # table -> the strongest lock mode the statement took (not held before it)
    held: dict[str, str]  # table -> the strongest lock mode its transaction holds afterwards
    rewrote: list[str]  # tables and indexes given a new relfilenode
    rows: dict[str, int]  # rows of each rewritten table
    ms: float
    lock_timeout: str  # in effect after the statement; "0" is none
    transaction: bool  # False in an autocommit block: nothing is held afterwards to read

    def summary(self) -> str:
        """One line: "took AccessExclusiveLock on post; rewrote post (3 rows, 4 ms)"."""
        parts = []
        if not self.transaction:
            parts.append("ran outside a transaction (autocommit block): its locks are released at once")
        elif self.took:
            parts.append("took " + ", ".join(f"{mode} on {table}" for table, mode in self.took.items()))
        else:
            parts.append("took no new lock on an existing table")
        tables = [name for name in self.rewrote if name in self.rows]
        indexes = [name for name in self.rewrote if name not in self.rows]
        if tables:
            parts.append("rewrote " + ", ".join(
                f"{name} ({self.rows[name]} row{'' if self.rows[name] == 1 else 's'}, {self.ms:.0f} ms)"
                for name in tables) + (f" and {len(indexes)} index{'es' if len(indexes) > 1 else ''}"
                                       if indexes else ""))
        elif indexes:
            parts.append(f"rebuilt index{'es' if len(indexes) > 1 else ''} {', '.join(indexes)} "
                         f"({self.ms:.0f} ms)")
        else:
            parts.append(f"no rewrite ({self.ms:.0f} ms)")
        return "; ".join(parts)

    def details(self) -> dict[str, Any]:
        return {"summary": self.summary(), "took": self.took, "held": self.held, "rewrote": self.rewrote,
                "rows": self.rows, "ms": round(self.ms, 1), "lock_timeout": self.lock_timeout,
                "in_transaction": self.transaction}


class _Revision(NamedTuple):
    """What the observer keeps while one in-scope revision runs."""
    existing: dict[str, tuple[str, str, str | None]]  # relations before it: name -> (file, kind, table)
    names: list[str]  # their names without the schema, to read only them after each operation
    # what was read after the last operation, and the number of statements run on the connection
    # then: it stands for the state before the next operation unless a statement ran in between
    last: list[tuple[_State, int] | None]
    timeout_flagged: list[bool]  # safety-lock-timeout is reported once per revision
    # table -> (line, statement) of the operation that took AccessExclusiveLock on it, until a
    # further statement is seen (then safety-lock-held is reported and the entry dropped)
    exclusive: dict[str, tuple[int | None, str, Observation]]


class Mismatch(NamedTuple):
    """An operation where the rules table's prediction and the observation disagree."""
    revision: str
    location: str
    predicted: str
    observed: str

    def line(self) -> str:
        return f"{self.location}: predicted {self.predicted}; observed {self.observed}"


class Observer:
    """Observes the in-scope operations on a PostgreSQL or MySQL/MariaDB --db-url server."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.mismatches: list[Mismatch] = []
        self._revision: _Revision | None = None
        self._listening: Any = None  # the connection whose statements `_count` counts
        self._statements = 0

    # -- called by the safety watch -------------------------------------------------------------

    def started(self, watch: Watch) -> None:
        """An in-scope revision begins: remember what existed before it."""
        current = watch.current
        assert current is not None
        # a revision run again (after a step raised) is observed again from its start
        self.mismatches[:] = [m for m in self.mismatches if m.revision != current.revision.revision]
        self._revision = None
        existing = {}
        if self.dialect == "postgresql":
            connection = _connection(watch)
            state = _read(connection)
            if state is None:  # an aborted transaction (an earlier revision caught an error): as it is
                return
            existing = state.files
            if not _autocommit(connection):
                # Observed from a transaction of its own, as if deployed alone: the walk runs the
                # history in one transaction, which holds the locks of every earlier revision.
                connection.connection.commit()
            self._listen(connection)
        self._revision = _Revision(existing, sorted({name.split(".")[-1] for name in existing}), [None],
                                   [False], {})

    def ended(self) -> None:
        self._revision = None
        self._listen(None)

    def _listen(self, connection: Any) -> None:
        """Count the statements SQLAlchemy runs on the revision's connection (not the observer's own)."""
        if self._listening is not None:
            sa.event.remove(self._listening, "before_cursor_execute", self._counted)
            self._listening = None
        if connection is not None:
            sa.event.listen(connection, "before_cursor_execute", self._counted)
            self._listening = connection

    def _counted(self, *args: Any) -> None:
        self._statements += 1

    def invoked(self, watch: Watch, operation: ops.MigrateOperation, predicted: list[Finding],
                run: Callable[[], Any], line: int | None) -> Any:
        """Run one operation (or one queued batch operation) and judge it by what it did."""
        if self._revision is None or watch.current is None:
            return run()
        if self.dialect == "postgresql":
            return self._postgresql(watch, operation, predicted, run, line)
        return self._mysql(watch, operation, predicted, run, line)

    # -- PostgreSQL ----------------------------------------------------------------------------

    def _postgresql(self, watch: Watch, operation: ops.MigrateOperation, predicted: list[Finding],
                    run: Callable[[], Any], line: int | None) -> Any:
        revision = self._revision
        assert revision is not None
        connection = _connection(watch)
        names, last = revision.names, revision.last[0]
        before = last[0] if last is not None and last[1] == self._statements else _read(connection, names)
        started = time.perf_counter()
        result = run()
        ms = (time.perf_counter() - started) * 1000
        after = _read(connection, names) if before is not None else None
        revision.last[0] = (after, self._statements) if after is not None else None
        if before is None or after is None:  # the transaction is aborted: a caught error, reported so
            return result
        observation = self._observation(watch, connection, before, after, ms)
        statement = _statement(operation)
        self._held_through(watch, operation, observation, line, statement)
        self._judge(watch, operation, predicted, observation, line, statement)
        return result

    def _observation(self, watch: Watch, connection: Any, before: _State, after: _State,
                     ms: float) -> Observation:
        assert self._revision is not None
        version_table = watch.current.context.version_table if watch.current else ""
        existing = {name: entry for name, entry in self._revision.existing.items()
                    if watch.existing_table(entry[2] or name) and (entry[2] or name) != version_table}
        tables = {name for name, (_, kind, _) in existing.items() if kind in ("r", "p", "m")}
        new = {name: modes - before.locks.get(name, set()) for name, modes in after.locks.items()}
        took = {name: max(modes, key=_strength) for name, modes in new.items() if name in tables and modes}
        held = {name: max(modes, key=_strength) for name, modes in after.locks.items() if name in tables}
        rewrote = sorted((name for name in existing
                          if name in before.files and name in after.files
                          and before.files[name][0] != after.files[name][0]),
                         key=lambda name: (name not in tables, name))
        rows = {name: _count(connection, name) for name in rewrote if name in tables}
        in_transaction = not _autocommit(connection)
        return Observation(took, held, rewrote, rows, ms,
                           after.lock_timeout, in_transaction)

    def _judge(self, watch: Watch, operation: ops.MigrateOperation, predicted: list[Finding],
               observation: Observation, line: int | None, statement: str) -> None:
        revision = self._revision
        assert revision is not None
        tables_rewritten = [name for name in observation.rewrote if name in observation.rows]
        new: list[Finding] = []
        for table in tables_rewritten:
            under = f" under {observation.held[table]}" if table in observation.held else ""
            cause, column = _cause(predicted, table, statement)
            new.append(watch.flag(line, "safety-table-rewrite",
                                  f"{cause}: PostgreSQL rewrote `{table}`{under}, copying every row while "
                                  f"reads and writes wait ({observation.rows[table]} rows took "
                                  f"{observation.ms:.0f} ms here)", table, column, observation.details()))
        dangerous = {table: mode for table, mode in observation.took.items() if mode in DANGEROUS}
        if dangerous and observation.lock_timeout in ("0", "") and not revision.timeout_flagged[0] \
                and not watch.configured_lock_timeout():
            revision.timeout_flagged[0] = True
            shown = ", ".join(f"{mode} on `{table}`" for table, mode in dangerous.items())
            new.append(watch.flag(line, "safety-lock-timeout",
                                  f"{statement} takes {shown} with no lock_timeout in effect: while it "
                                  "waits for a long query to finish, every later read and write of the "
                                  "table queues behind it", next(iter(dangerous)), None,
                                  observation.details()))
        for finding in predicted:
            settled = finding.rule in REWRITE_RULES
            if finding.rule in REWRITE_RULES and not tables_rewritten:
                self._mismatch(watch, finding.location, f"{finding.rule} (a rewrite)", observation.summary())
            watch.replace(finding, None if settled else finding._replace(
                details={**finding.details, "basis": "observed", "observed": observation.details()}))
        if tables_rewritten and not any(f.rule in REWRITE_RULES for f in predicted):
            self._mismatch(watch, _where(watch, line), "no rewrite", observation.summary())

    def _held_through(self, watch: Watch, operation: ops.MigrateOperation, observation: Observation,
                      line: int | None, statement: str) -> None:
        """safety-lock-held: a statement runs while an AccessExclusiveLock an earlier statement of
        the revision took on an existing table is still held (and is not more DDL of that table)."""
        revision = self._revision
        assert revision is not None
        if isinstance(operation, ops.ExecuteSQLOp) and _SETTING.match(_sql(operation)):
            return  # SET / RESET / SHOW: no work done under the lock
        for table, (taken_at, taken_by, taking) in list(revision.exclusive.items()):
            same_table_ddl = not isinstance(operation, ops.ExecuteSQLOp) and _table_of(operation) == table
            if same_table_ddl or observation.held.get(table) != "AccessExclusiveLock":
                continue
            del revision.exclusive[table]
            watch.flag(taken_at, "safety-lock-held",
                       f"{taken_by} takes AccessExclusiveLock on `{table}`, and the same transaction "
                       f"goes on to run {statement} (line {line}) while holding it: every read and write "
                       f"of `{table}` waits until the transaction ends", table, None,
                       {**taking.details(), "summary": f"{taking.summary()}; held through line {line}",
                        "further_line": line})
        for table, mode in observation.took.items():
            if mode == "AccessExclusiveLock" and table not in revision.exclusive:
                revision.exclusive[table] = (line, statement, observation)

    def _mismatch(self, watch: Watch, location: str, predicted: str, observed: str) -> None:
        assert watch.current is not None
        self.mismatches.append(Mismatch(watch.current.revision.revision, location, predicted, observed))

    # -- MySQL / MariaDB -----------------------------------------------------------------------

    def _mysql(self, watch: Watch, operation: ops.MigrateOperation, predicted: list[Finding],
               run: Callable[[], Any], line: int | None) -> Any:
        connection = _connection(watch)
        trials: list[tuple[str, str, str | None]] = []  # (table, best accepted or "", server's reason)

        def before_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                           executemany: bool) -> None:
            match = _ALTER.match(statement)
            if match is None or executemany or _NOT_TRIED.search(match.group("rest")):
                return
            table = match.group("table").replace("`", "")
            if "." in table or not watch.existing_table(table):
                return
            trials.append((table, *_online(cursor.connection, table, match.group("rest"))))

        sa.event.listen(connection, "before_cursor_execute", before_execute)
        try:
            result = run()
        finally:
            sa.event.remove(connection, "before_cursor_execute", before_execute)
        statement = _statement(operation)
        offline = [(table, reason) for table, best, reason in trials if not best and reason]
        for table, reason in offline:
            cause, column = _cause(predicted, table, statement)
            watch.flag(line, "safety-not-online",
                       f"{cause}: the server cannot run it online on `{table}`, it refuses both "
                       f"ALGORITHM=INSTANT and ALGORITHM=INPLACE, LOCK=NONE ({reason}), and copies the "
                       "table while writes wait", table, column,
                       {"summary": f"online ALTER refused: {reason}", "online": False, "reason": reason})
        tried = [t for t in trials if t[1] or t[2]]
        for finding in predicted:
            if finding.rule != "safety-change-type" or not tried:
                continue
            online = not offline
            if online:
                self._mismatch(watch, finding.location, "safety-change-type (a table copy)",
                               f"online with ALGORITHM={tried[0][1]}")
            watch.replace(finding, None)  # settled: online, or reported as safety-not-online
        return result


_ALTER = re.compile(r"\s*ALTER\s+TABLE\s+(?P<table>`[^`]+`|[\w$.]+)\s+(?P<rest>.*)\Z", re.I | re.S)
# Not tried on a copy: it would rename the copy, or already names its own algorithm/lock.
_NOT_TRIED = re.compile(r"\bRENAME\s+(TO|AS)\b|^\s*RENAME\s+\w|\bALGORITHM\s*=|\bLOCK\s*=", re.I)
_UNSUPPORTED = (1845, 1846)  # ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON)
_COPY = "_migcheck_online_copy"


def _online(dbapi: Any, table: str, rest: str) -> tuple[str, str | None]:
    """The best way the server accepts to run `ALTER TABLE table rest` on a copy of the table:
    ("INSTANT" / "INPLACE, LOCK=NONE", None), or ("", its reason) when it refuses both, or ("", None)
    when the trial itself failed for another reason (nothing is claimed then)."""
    cursor = dbapi.cursor()
    reason: str | None = None
    try:
        cursor.execute(f"DROP TABLE IF EXISTS `{_COPY}`")
        cursor.execute(f"CREATE TABLE `{_COPY}` LIKE `{table}`")
        cursor.execute(f"INSERT INTO `{_COPY}` SELECT * FROM `{table}`")
        for best in ("INSTANT", "INPLACE, LOCK=NONE"):
            try:
                cursor.execute(f"ALTER TABLE `{_COPY}` {rest.rstrip().rstrip(';')}, ALGORITHM={best}")
                return best, None
            except Exception as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                if code not in _UNSUPPORTED:
                    return "", None
                reason = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        return "", reason
    except Exception:  # e.g. a table the copy cannot be made of: no claim
        return "", None
    finally:
        try:
            cursor.execute(f"DROP TABLE IF EXISTS `{_COPY}`")
        finally:
            cursor.close()


@contextmanager
def batches(watch: Watch) -> Iterator[None]:
    """Run a batch's queued operations one at a time when the block ends, each observed at its own
    line (on PostgreSQL and MySQL batch mode alters in place; a recreated table is observed whole)."""
    original = BatchOperationsImpl.flush

    def flush(self: Any) -> None:
        queued = watch.queued.pop(id(self), [])
        observer = watch.observer
        if observer is None or len(queued) != len(self.batch) or self._should_recreate():
            if observer is not None and queued:
                operation, predicted, line = queued[0]
                observer.invoked(watch, operation, predicted, lambda: original(self), line)
                return
            original(self)
            return
        items = self.batch
        try:
            for item, (operation, predicted, line) in zip(items, queued, strict=True):
                self.batch = [item]
                observer.invoked(watch, operation, predicted, lambda: original(self), line)
        finally:
            self.batch = items

    with mock.patch.object(BatchOperationsImpl, "flush", flush):
        yield


def _cause(predicted: list[Finding], table: str, statement: str) -> tuple[str, str | None]:
    """What made a table be rewritten or copied, for the message, and the column: the prediction's
    own words where there was one for that table ("changes the type of `post.view_count` from
    INTEGER to BIGINT"), else the statement."""
    for finding in predicted:
        if finding.rule in REWRITE_RULES and finding.details.get("table") == table:
            return finding.message.split(": ", 1)[0], finding.details.get("column")
    return statement, None


def _connection(watch: Watch) -> Any:
    assert watch.current is not None
    connection = watch.current.context.connection
    assert connection is not None
    return connection


def _read(connection: Any, names: list[str] | None = None) -> _State | None:
    """What the relations (all, or those with these names), locks and lock_timeout are now; None in
    a transaction that an error aborted (the revision caught it; the upgrade check reports the
    error, and nothing can be read)."""
    cursor = connection.connection.cursor()
    try:
        if names is None:
            cursor.execute(_RELATIONS + _LOCKS)
        else:
            cursor.execute(_RELATIONS + _NAMED + _LOCKS, (names,))
        rows = cursor.fetchall()
    except Exception:  # only in an aborted transaction, which stays as it was
        return None
    finally:
        cursor.close()
    files: dict[str, tuple[str, str, str | None]] = {}
    locks: dict[str, set[str]] = {}
    timeout = "0"
    for kind, name, value, relkind, table in rows:
        if kind == "r":
            files[name] = (value, relkind, table)
        elif kind == "l":
            locks.setdefault(name, set()).add(value)
        else:
            timeout = value
    return _State(files, locks, timeout)


def _count(connection: Any, table: str) -> int:
    cursor = connection.connection.cursor()
    try:
        quoted = ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))
        cursor.execute(f"SELECT count(*) FROM {quoted}")
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()


def _autocommit(connection: Any) -> bool:
    return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


_STRENGTH = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
             "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


def _strength(mode: str) -> int:
    return _STRENGTH.index(mode) if mode in _STRENGTH else -1


_SETTING = re.compile(r"\s*(SET|RESET|SHOW)\b", re.I)


def _sql(operation: ops.ExecuteSQLOp) -> str:
    sqltext = operation.sqltext
    if isinstance(sqltext, str):
        return sqltext
    return str(getattr(sqltext, "text", getattr(sqltext, "statement", sqltext)))


def _table_of(operation: ops.MigrateOperation) -> str | None:
    table = getattr(operation, "table_name", None) or getattr(operation, "source_table", None)
    schema = getattr(operation, "schema", None)
    return f"{schema}.{table}" if schema and table else table


def _statement(operation: ops.MigrateOperation) -> str:
    """How the revision wrote it, for a message: "`alter_column('post', 'view_count')`"."""
    if isinstance(operation, ops.ExecuteSQLOp):
        text = " ".join(_sql(operation).split())
        return f"`op.execute({text[:60] + '...' if len(text) > 60 else text!r})`"
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(operation).__name__.replace("Op", "")).lower()
    table = _table_of(operation)
    column = getattr(operation, "column_name", None)
    if column is None and isinstance(getattr(operation, "column", None), sa.Column):
        column = operation.column.name  # type: ignore[attr-defined]
    args = ", ".join(repr(a) for a in (table, column) if a)
    return f"`{name}({args})`"


def _where(watch: Watch, line: int | None) -> str:
    from migcheck.usercode import relative

    assert watch.current is not None
    path = relative(watch.current.revision.path)
    return f"{path}:{line}" if line else path
