"""safety: will a revision that is not deployed yet fail or lock the production database?

It watches the operations of each revision in scope (scope.py) as they run in the walk: every
`op.*` and `batch_op.*` call goes through `Operations.invoke` at the moment the revision calls it,
so the calling frame gives the exact file:line (batch operations run later, when their `with` block
ends, but are invoked at their own line). Whether a table or column existed before the revision is
known, not guessed: an object that an in-scope revision created (this one or an earlier one, none of
them deployed) is new and never flagged; anything else existed on the deployed database. Column
types and nullability the operation does not state are reflected from the scratch database, only
for the tables an operation touches. Which rules apply depends on the database the project deploys
on (`targets`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple
from unittest import mock

import sqlalchemy as sa
from alembic.operations import BatchOperations, Operations, ops
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import Script

from migcheck import compat, rules
from migcheck.checks import observe
from migcheck.findings import Finding
from migcheck.project import Project
from migcheck.state import rawsql
from migcheck.usercode import calling_line, relative

NAME = "safety"

# PostgreSQL rewrites the table for an added column whose default is volatile (evaluated per row);
# a stable default such as now() or CURRENT_TIMESTAMP is evaluated once (PostgreSQL 11+).
_VOLATILE = re.compile(r"\b(random|gen_random_uuid|uuid_generate_v[14]|clock_timestamp|timeofday|"
                       r"nextval|txid_current|statement_timestamp)\s*\(", re.I)


class Target(NamedTuple):
    dialect: str  # "postgresql", "mysql", "mariadb", "sqlite", ...; "" when not known
    reason: str  # where it came from, for the summary


def targets(project: Project) -> dict[str | None, Target]:
    """The database each bind deploys on: the --db-url server's type, else `target` in the config,
    else the dialect of the URL the app is configured with (known without connecting)."""
    if project.scratch.server is not None:
        return {bind: Target(project.scratch.dialect, "the --db-url server") for bind in project.binds}
    if project.options.target:
        origin = project.options.origin("target")  # --target, or the config file
        return {bind: Target(project.options.target, origin) for bind in project.binds}
    found = {}
    for bind, url in project.scratch.configured.items():
        try:
            dialect = sa.engine.url.make_url(url).get_backend_name()
        except Exception:  # an unreadable URL: only the rules for every database apply
            dialect = ""
        where = "SQLALCHEMY_DATABASE_URI" if bind is None else f"SQLALCHEMY_BINDS[{bind!r}]"
        found[bind] = Target(dialect, f"the app's {where}")
    return found


def describe(found: dict[str | None, Target]) -> str:
    """For the summary: which database the rules assumed and why, e.g. "deploy target postgresql
    (the --db-url server)"."""
    shown = sorted({f"{t.dialect or 'unknown'} ({t.reason})" for t in found.values()})
    return f"deploy target {', '.join(shown) or 'unknown (the app configures no database URL)'}"


class _Current(NamedTuple):
    """The in-scope revision being upgraded on one bind."""
    revision: Script
    paths: tuple[str, str]  # its file as imported and its real path: to find the calling frame
    bind: str | None
    dialect: str
    context: MigrationContext
    columns: dict[str, dict[str, dict[str, Any]]]  # table -> column -> reflected, as first seen


class Watch:
    """Sees the operations of in-scope revisions; the walk calls `before` and `after` around every
    upgrade step, and `watching` routes every operation through `seen`."""

    def __init__(self, project: Project, scope: frozenset[str], found: dict[str | None, Target]) -> None:
        self.scope = scope
        self.targets = found
        self.project = project
        self.findings: list[Finding] = []
        # (bind, "table", table) / (bind, "column", "table.column") / (bind, "index", name) created
        # by in-scope revisions: new objects, which no rule flags
        self.created: set[tuple[str | None, str, str]] = set()
        self._inspected: set[tuple[str | None, str]] = set()
        # what was created before each revision's first attempt: a revision run again (after a
        # step raised) starts from it, not from what its failed attempt created
        self._created_before: dict[tuple[str | None, str], frozenset[tuple[str | None, str, str]]] = {}
        self._current: _Current | None = None
        # On a --db-url server, what each operation really does is observed (observe.py); batch
        # operations wait in `queued` (per batch) until their block ends and they run.
        self.observer = observe.Observer(project.scratch.dialect) \
            if project.scratch.server is not None and project.scratch.dialect in observe.DIALECTS else None
        self.queued: dict[int, list[tuple[ops.MigrateOperation, list[Finding], int | None]]] = {}

    @property
    def current(self) -> _Current | None:
        return self._current

    def before(self, step: RevisionStep, context: MigrationContext) -> None:
        revision = step.revision
        self._current = None  # also after a step that raised, whose `after` never came
        self.queued.clear()  # batches of a step that raised before their block ended
        if revision.revision not in self.scope:
            return
        connection = context.connection
        assert connection is not None
        bind = self.project.scratch.bind_for(connection.engine)
        key = (bind, revision.revision)
        if key in self._inspected:  # watched to its end already; the round trip rebuilt the database
            return
        # A step that raised (e.g. on the data check's generated rows) is run again from its start:
        # watch it again, from its first operation, with what existed before it.
        if key in self._created_before:
            self.created = set(self._created_before[key])
            self.findings[:] = [f for f in self.findings
                                if (f.details.get("bind"), f.details["revision"]) != key]
        else:
            self._created_before[key] = frozenset(self.created)
        target = self.targets.get(bind) or Target("", "")
        self._current = _Current(revision, (revision.path, os.path.realpath(revision.path)), bind,
                                 target.dialect, context, {})
        if self.observer is not None:
            self.observer.started(self)

    def after(self, step: RevisionStep, context: MigrationContext) -> None:
        if self._current is not None:
            self._inspected.add((self._current.bind, self._current.revision.revision))
        self._current = None
        if self.observer is not None:
            self.observer.ended()

    def seen(self, operation: ops.MigrateOperation) -> None:
        current = self._current
        if current is None:
            return
        line = calling_line(current.paths)
        if isinstance(operation, ops.ExecuteSQLOp):
            sql = _sql_text(operation.sqltext)
            if sql is None:
                return
            for recognized in rawsql.recognize(sql, current.context.dialect):
                if isinstance(recognized, rawsql.IfExists):
                    if not self._exists(current, recognized):  # does nothing
                        continue
                    recognized = recognized.operation
                if isinstance(recognized, rawsql.Unchecked):
                    if recognized.table and not self._existing_table(current.bind, recognized.table):
                        continue
                    self._flag(current, line, "safety-sql-unchecked",
                               "`op.execute` runs SQL that changes the schema in a way migcheck "
                               "cannot check", None, None, recognized.statement)
                else:
                    self._judge(current, line, recognized, sql)
        else:
            self._judge(current, line, operation, None)

    def ran(self, operations: Operations, operation: ops.MigrateOperation, predicted: list[Finding],
            run: Callable[[], Any]) -> Any:
        """Run an operation; on a server, observe what it does (a batch operation when its block ends)."""
        if self.observer is None or self._current is None:
            return run()
        line = calling_line(self._current.paths)
        if isinstance(operations, BatchOperations):
            self.queued.setdefault(id(operations.impl), []).append((operation, predicted, line))
            return run()
        return self.observer.invoked(self, operation, predicted, run, line)

    def existing_table(self, table: str) -> bool:
        """Whether a table of the current revision's bind existed before the in-scope revisions."""
        return self._current is not None and self._existing_table(self._current.bind, table)

    def configured_lock_timeout(self) -> str | None:
        """The lock_timeout the app's connection options set for the current bind (the scratch
        engine leaves them out; production connections have it)."""
        assert self._current is not None
        return self.project.scratch.lock_timeouts.get(self._current.bind)

    def flag(self, line: int | None, rule: str, message: str, table: str | None, column: str | None,
             observed: dict[str, Any]) -> Finding:
        """A finding from what the server did (observe.py), for the current revision."""
        assert self._current is not None
        self._flag(self._current, line, rule, message, table, column, None,
                   {"basis": "observed", "observed": observed})
        return self.findings[-1]

    def replace(self, finding: Finding, by: Finding | None) -> None:
        """A prediction the observation settled (by None) or completed."""
        for index, found in enumerate(self.findings):
            if found is finding:
                if by is None:
                    del self.findings[index]
                else:
                    self.findings[index] = by
                return

    def _judge(self, current: _Current, line: int | None, operation: ops.MigrateOperation,
               sql: str | None) -> None:
        for rule, message, table, column in self._rules(current, operation):
            self._flag(current, line, rule, message, table, column, sql)

    def _rules(self, current: _Current, operation: ops.MigrateOperation
               ) -> Iterator[tuple[str, str, str | None, str | None]]:
        """(rule, message, table, column) for each rule the operation breaks; records what it creates."""
        bind, postgresql = current.bind, current.dialect == "postgresql"
        if isinstance(operation, ops.CreateTableOp):
            table = _name(operation.table_name, operation.schema)
            self._create(bind, "table", table)
            for column in operation.columns:
                if isinstance(column, sa.Column):
                    self._create(bind, "column", f"{table}.{column.name}")
        elif isinstance(operation, ops.AddColumnOp):
            table, column = _name(operation.table_name, operation.schema), operation.column
            existing = self._existing_table(bind, table)
            self._create(bind, "column", f"{table}.{column.name}")
            if not existing:
                return
            if (not column.nullable and column.server_default is None and not column.primary_key
                    and not compat.database_generated(column)):
                outcome = ("MySQL and MariaDB fill the existing rows with the type's implicit "
                           "default (0, '', ...) without a word" if current.dialect in ("mysql", "mariadb")
                           else "the upgrade fails wherever it has rows")
                yield ("safety-add-not-null-column",
                       f"adds NOT NULL column `{table}.{column.name}` without a server default to "
                       f"`{table}`, which existed before: {outcome}", table, column.name)
            if column.unique:
                yield ("safety-add-unique",
                       f"adds column `{table}.{column.name}` with a unique constraint to `{table}`, "
                       "which existed before: its index is built under a lock that blocks writes",
                       table, column.name)
            default = _default_sql(column.server_default)
            if postgresql and default and _VOLATILE.search(default):
                yield ("safety-volatile-default",
                       f"adds column `{table}.{column.name}` with the volatile default `{default}`: "
                       f"PostgreSQL rewrites all of `{table}` under an exclusive lock", table, column.name)
        elif isinstance(operation, ops.DropColumnOp):
            table = _name(operation.table_name, operation.schema)
            if self._existing_column(bind, table, operation.column_name):
                yield ("safety-drop-column",
                       f"drops column `{table}.{operation.column_name}`, which the deployed code may "
                       "still read during the rollout; its data is gone", table, operation.column_name)
        elif isinstance(operation, ops.DropTableOp):
            table = _name(operation.table_name, operation.schema)
            if self._existing_table(bind, table):
                yield ("safety-drop-table",
                       f"drops table `{table}`, which the deployed code may still use during the "
                       "rollout; its data is gone", table, None)
        elif isinstance(operation, ops.RenameTableOp):
            table = _name(operation.table_name, operation.schema)
            new = _name(operation.new_table_name, operation.schema)
            if self._existing_table(bind, table):
                yield ("safety-rename-table",
                       f"renames table `{table}` to `{new}`: the deployed code still uses the old "
                       "name until the rollout ends", table, None)
            else:
                self._create(bind, "table", new)
                for kind, name in [(k, n) for b, k, n in self.created if b == bind and k == "column"
                                   and n.startswith(table + ".")]:
                    self._create(bind, kind, new + name[len(table):])
        elif isinstance(operation, ops.AlterColumnOp):
            yield from self._alter(current, operation)
        elif isinstance(operation, ops.CreateIndexOp):
            table = _name(operation.table_name, operation.schema)
            if operation.index_name:
                self._create(bind, "index", operation.index_name)
            if not self._existing_table(bind, table):
                return
            concurrently = postgresql and operation.kw.get("postgresql_concurrently")
            if operation.unique and not (concurrently and not _autocommit(current.context)):
                # one finding: on PostgreSQL its fix builds the index concurrently too
                without = " without postgresql_concurrently=True" if postgresql and not concurrently else ""
                outcome = ("it fails if the rows have duplicates, leaving an invalid index behind"
                           if concurrently else
                           "it fails if the rows have duplicates, and blocks writes while it builds")
                yield ("safety-add-unique",
                       f"adds a unique index to `{table}`, which existed before{without}: {outcome}",
                       table, None)
            elif postgresql:
                yield from self._concurrently(current, operation.kw, "creates", operation.index_name,
                                              table)
        elif isinstance(operation, ops.DropIndexOp):
            on = _name(operation.table_name, operation.schema) if operation.table_name else None
            fresh = (bind, "index", operation.index_name) in self.created or (
                on is not None and not self._existing_table(bind, on))
            if postgresql and not fresh:
                yield from self._concurrently(current, operation.kw, "drops", operation.index_name, on)
        elif isinstance(operation, (ops.CreateUniqueConstraintOp, ops.CreatePrimaryKeyOp)):
            table = _name(operation.table_name, operation.schema)
            what = ("a unique constraint" if isinstance(operation, ops.CreateUniqueConstraintOp)
                    else "a primary key")
            if self._existing_table(bind, table):
                yield ("safety-add-unique",
                       f"adds {what} to `{table}`, which existed before: it fails if the rows have "
                       "duplicates, and blocks writes while its index builds", table, None)
        elif isinstance(operation, (ops.CreateForeignKeyOp, ops.CreateCheckConstraintOp)):
            foreign = isinstance(operation, ops.CreateForeignKeyOp)
            table = (_name(operation.source_table, operation.kw.get("source_schema"))
                     if isinstance(operation, ops.CreateForeignKeyOp)
                     else _name(operation.table_name, operation.schema))
            if postgresql and self._existing_table(bind, table) \
                    and not operation.kw.get("postgresql_not_valid"):
                what = "a foreign key" if foreign else "a CHECK constraint"
                scans = "and the table it references " if foreign else ""
                yield ("safety-constraint-validates",
                       f"adds {what} to `{table}` without NOT VALID: PostgreSQL scans `{table}` "
                       f"under a lock that blocks writes to it {scans}until every row is checked",
                       table, None)

    def _alter(self, current: _Current, operation: ops.AlterColumnOp
               ) -> Iterator[tuple[str, str, str | None, str | None]]:
        bind = current.bind
        table, column = _name(operation.table_name, operation.schema), operation.column_name
        if not self._existing_column(bind, table, column):
            if operation.modify_name:
                self._create(bind, "column", f"{table}.{operation.modify_name}")
            return
        if operation.modify_name:
            yield ("safety-rename-column",
                   f"renames column `{table}.{column}` to `{operation.modify_name}`: the deployed code "
                   "still uses the old name until the rollout ends", table, column)
        if operation.modify_nullable is False:
            nullable = operation.existing_nullable
            if nullable is None:
                nullable = self._reflected(current, table, operation.schema, column).get("nullable")
            if nullable is not False:
                yield ("safety-set-not-null",
                       f"makes `{table}.{column}` NOT NULL: the upgrade fails if a row holds NULL, "
                       "and checks every row under a lock that blocks writes", table, column)
        if operation.modify_type is not None:
            old = operation.existing_type
            if old is None:
                old = self._reflected(current, table, operation.schema, column).get("type")
            new = operation.modify_type
            if not _same_type(old, new) and not _widening(old, new, current.dialect):
                was = f" from {_show_type(old)}" if old is not None else ""
                yield ("safety-change-type",
                       f"changes the type of `{table}.{column}`{was} to {_show_type(new)}: that "
                       "rewrites the table under a lock, or fails on values that do not convert",
                       table, column)

    def _concurrently(self, current: _Current, kw: dict[str, Any], verb: str, index: str | None,
                      table: str | None) -> Iterator[tuple[str, str, str | None, str | None]]:
        what = f"index `{index}`" if index else "an index"
        on = f" on `{table}`" if table else ""
        if not kw.get("postgresql_concurrently"):
            yield ("safety-index-not-concurrent",
                   f"{verb} {what}{on} without postgresql_concurrently=True: writes to the table are "
                   "blocked until it is done", table, None)
        elif not _autocommit(current.context):
            yield ("safety-concurrently-in-transaction",
                   f"{verb} {what}{on} concurrently inside the migration's transaction: PostgreSQL "
                   "refuses (CONCURRENTLY cannot run inside a transaction block)", table, None)

    def _flag(self, current: _Current, line: int | None, rule: str, message: str, table: str | None,
              column: str | None, sql: str | None, observed: dict[str, Any] | None = None) -> None:
        revision = current.revision
        details: dict[str, Any] = {"revision": revision.revision, **(observed or {"basis": "predicted"})}
        where = f"in `{revision.revision}`"
        if current.bind is not None:
            details["bind"] = current.bind
            where += f", bind `{current.bind}`"
        if table:
            details["table"] = table
        if column:
            details["column"] = column
        if sql:
            details["statement"] = " ".join(sql.split())
        self.findings.append(Finding(NAME, rule, rules.RULES[rule].severity,
                                     f"{message} ({where})", relative(revision.path),
                                     line, rules.RULES[rule].fix, details))

    def _create(self, bind: str | None, kind: str, name: str) -> None:
        self.created.add((bind, kind, name))

    def _existing_table(self, bind: str | None, table: str) -> bool:
        return (bind, "table", table) not in self.created

    def _existing_column(self, bind: str | None, table: str, column: str) -> bool:
        return self._existing_table(bind, table) and (bind, "column", f"{table}.{column}") not in self.created

    def _exists(self, current: _Current, conditional: rawsql.IfExists) -> bool:
        """Whether the object a `... IF EXISTS` statement acts on is there (before the statement)."""
        connection = current.context.connection
        assert connection is not None
        schema, name = conditional.schema, conditional.name
        if current.dialect == "postgresql" and conditional.kind in ("table", "index"):
            qualified = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, name) if part)
            found = connection.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": qualified})
            return bool(found.scalar())
        if conditional.kind == "index":  # only PostgreSQL has index rules
            return True
        inspector = sa.inspect(connection)
        if conditional.kind == "column":
            try:
                columns = inspector.get_columns(conditional.table or "", schema=schema)
            except sa.exc.NoSuchTableError:
                return False
            return any(column["name"] == name for column in columns)
        return name in {*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema=schema)}

    def _reflected(self, current: _Current, table: str, schema: str | None, column: str) -> dict[str, Any]:
        """The column as it was when an operation of this revision first touched its table."""
        if table not in current.columns:
            connection = current.context.connection
            try:
                found = sa.inspect(connection).get_columns(table.split(".")[-1], schema=schema)
            except sa.exc.NoSuchTableError:
                found = []
            current.columns[table] = {c["name"]: dict(c) for c in found}
        return current.columns[table].get(column, {})


@contextmanager
def watching(watch: Watch) -> Iterator[Watch]:
    """Route every `op.*` / `batch_op.*` call through the watch while the walk runs."""
    original = Operations.invoke

    def invoke(self: Any, operation: ops.MigrateOperation) -> Any:
        mark = len(watch.findings)
        watch.seen(operation)
        return watch.ran(self, operation, watch.findings[mark:], lambda: original(self, operation))

    # Both: BatchOperations derives from Operations in old Alembic, from AbstractOperations in new.
    with mock.patch.object(Operations, "invoke", invoke), \
            mock.patch.object(BatchOperations, "invoke", invoke), observe.batches(watch):
        yield watch


def _autocommit(context: MigrationContext) -> bool:
    """Inside `op.get_context().autocommit_block()`: no transaction around the statement."""
    connection = context.connection
    options = connection.get_execution_options() if connection is not None else {}
    return options.get("isolation_level") == "AUTOCOMMIT"


def _sql_text(sqltext: Any) -> str | None:
    """The SQL of `op.execute(...)`: a string, text(), or DDL(); None for expression constructs
    (insert/update/delete), which change data, not schema."""
    if isinstance(sqltext, str):
        return sqltext
    for attribute in ("text", "statement"):  # TextClause.text, DDL.statement
        value = getattr(sqltext, attribute, None)
        if isinstance(value, str):
            return value
    return None


def _name(table: str, schema: str | None) -> str:
    return f"{schema}.{table}" if schema else table


def _default_sql(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", default)
    return arg if isinstance(arg, str) else str(getattr(arg, "text", arg))


def _same_type(old: Any, new: Any) -> bool:
    if old is None:
        return False
    old, new = _instance(old), _instance(new)
    return type(old) is type(new) and repr(old) == repr(new)


def _widening(old: Any, new: Any, dialect: str) -> bool:
    """A change that keeps every value and needs no rewrite: a longer VARCHAR (on MySQL/MariaDB
    within the same length-prefix size), VARCHAR to TEXT (PostgreSQL, SQLite), more NUMERIC
    precision with the same scale (PostgreSQL)."""
    if old is None:
        return False
    old, new = _instance(old), _instance(new)
    if isinstance(old, sa.String) and isinstance(new, sa.String) \
            and not isinstance(old, sa.Enum) and not isinstance(new, sa.Enum):
        old_length, new_length = old.length, new.length
        if new_length is None:  # TEXT or an unbounded VARCHAR
            return dialect in ("postgresql", "sqlite")
        if old_length is None or isinstance(old, sa.Text) or new_length < old_length:
            return False
        # MySQL/MariaDB widen in place only while the length prefix keeps its size: one byte up to
        # 255 bytes, 63 characters in utf8mb4 (their default character set).
        return dialect not in ("mysql", "mariadb") or (old_length <= 63) == (new_length <= 63)
    if isinstance(old, sa.Numeric) and isinstance(new, sa.Numeric) and dialect == "postgresql" \
            and not isinstance(old, sa.Float) and not isinstance(new, sa.Float):
        before, after = old.precision, new.precision
        return old.scale == new.scale and before is not None and (after is None or after >= before)
    return False


def _instance(type_: Any) -> Any:
    return type_() if isinstance(type_, type) else type_


def _show_type(type_: Any) -> str:
    type_ = _instance(type_)
    if isinstance(type_, sa.types.NullType):
        return "another type"
    try:
        return str(type_)
    except Exception:  # a type that cannot compile without a dialect
        return type(type_).__name__
