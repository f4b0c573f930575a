"""The schema a history starts from (`--start-from` / `start_from`), for projects whose installs never
ran the first revisions on an empty database: a fresh install runs `db.create_all()` and `stamp head`,
old history was squashed away, or the first revision alters a table an `init` command creates.

The start is a SQL file (`{dialect}` in its path becomes the scratch database's dialect: `sqlite`,
`postgresql`, `mysql`, also for MariaDB) or a Python callable `module:function`, called with a
SQLAlchemy Connection to the scratch database. It is run on the default bind's scratch database only
(the one `SQLALCHEMY_DATABASE_URI` names), when it is empty: before the walk, and again whenever the
round trip rebuilds the database. If it leaves rows in the version table (`alembic_version`, or the
`version_table` given to Migrate), the walk starts after those revisions, as `flask db upgrade` would.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from migcheck import compat
from migcheck.config import is_callable
from migcheck.errors import UsageError
from migcheck.state import sqlscript
from migcheck.usercode import relative, user_location

if TYPE_CHECKING:
    from migcheck.project import Project

class Start(NamedTuple):
    kind: str  # "sql" or "callable"
    source: str  # the SQL file (`{dialect}` filled in), or "module:function"
    origin: str  # the option it came from, for messages: "--start-from", "start_from in ..."

    @property
    def shown(self) -> str:
        """As the user would name it."""
        return relative(self.source) if self.kind == "sql" else self.source

    def files(self) -> list[str]:
        """The file whose content is the start: the SQL file, or the callable's module."""
        if self.kind == "sql":
            return [self.source]
        module = sys.modules.get(self.source.partition(":")[0])
        path = getattr(module, "__file__", None)
        return [os.path.realpath(path)] if path else []


def resolve(given: str, dialect: str, origin: str) -> Start:
    """The start as given, checked before any check runs: the file exists, or the callable imports."""
    if is_callable(given):
        start = Start("callable", given, origin)
        with _importable():
            _function(start)  # imported now: an error in it stops the run before any check
        return start
    name = "mysql" if dialect == "mariadb" else dialect
    path = given.replace("{dialect}", name)
    if not os.path.isfile(path):
        per_dialect = f" (`{{dialect}}` is {name} here)" if "{dialect}" in given else ""
        raise UsageError(f"{origin}: no such file {relative(path)!r}{per_dialect}. Give a SQL file with "
                         "the schema the first revision expects, or `module:function`, called with a "
                         "SQLAlchemy Connection to the scratch database.")
    return Start("sql", os.path.abspath(path), origin)


def lay_down(project: Project) -> tuple[str, ...]:
    """Run the project's start, if it has one, on its empty default scratch database; returns the
    revisions it stamped (where the walk starts), which must be revisions of the history."""
    if project.start is None:
        return ()
    url = project.scratch.url_for(None)
    apply(project.start, url, project.scratch.dialect)
    options = project.migrate_args
    found = stamped(url, options.get("version_table") or "alembic_version",
                    options.get("version_table_schema"))
    known = {script.revision for script in project.scripts}
    unknown = [revision for revision in found if revision not in known]
    if unknown:
        raise UsageError(f"{project.start.origin}: the starting schema {project.start.shown} stamps "
                         f"revision {', '.join(unknown)}, which is not in "
                         f"{relative(os.fspath(project.directory))}. Stamp a revision of this history "
                         "(the one the schema is at).")
    return found


def describe(start: Start, stamped: tuple[str, ...]) -> str:
    """For the summary: where the walk started and why."""
    if not stamped:
        return f"walk started at the base revision, on the schema from {start.shown}"
    how = f"in {start.shown}" if start.kind == "sql" else f"written by {start.shown}"
    return f"walk started at {', '.join(stamped)} (alembic_version {how})"


def apply(start: Start, url: str, dialect: str) -> None:
    """Run the start on the (empty) scratch database at `url`."""
    engine = sa.create_engine(url, poolclass=NullPool)  # its own connections: pg_dump sets search_path
    try:
        if start.kind == "sql":
            _run_script(start, engine, dialect)
        else:
            with _importable():
                _call(start, engine)
    finally:
        engine.dispose()


def stamped(url: str, version_table: str, schema: str | None) -> tuple[str, ...]:
    """The revisions the version table of the database at `url` holds, if it has one."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if version_table not in sa.inspect(connection).get_table_names(schema=schema):
                return ()
            quote = connection.dialect.identifier_preparer.quote
            name = f"{quote(schema)}.{quote(version_table)}" if schema else quote(version_table)
            rows = compat.exec_sql(connection, f"SELECT version_num FROM {name}")
            return tuple(sorted(str(row[0]) for row in rows))
    finally:
        engine.dispose()


def _run_script(start: Start, engine: sa.engine.Engine, dialect: str) -> None:
    try:
        script = Path(start.source).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{start.origin}: cannot read {start.shown}: {exc}.") from exc
    raw = engine.raw_connection()
    try:
        for statement in sqlscript.split(script, dialect):
            try:
                if dialect == "sqlite":
                    raw.executescript(statement.sql)  # the driver's: a trigger body holds `;`
                else:
                    cursor = raw.cursor()
                    cursor.execute(statement.sql)  # no parameters: `%` is not a placeholder
                    cursor.close()
            except Exception as exc:
                shown = " ".join(statement.sql.split())
                raise UsageError(
                    f"{start.origin}: the starting schema {start.shown} failed at line {statement.line} "
                    f"({shown[:80]!r}): {type(exc).__name__}: {str(exc).strip().splitlines()[0]}. Fix the "
                    f"file; it runs on an empty {dialect} database before the first revision.") from exc
        raw.commit()
    finally:
        raw.close()


@contextmanager
def _importable() -> Iterator[None]:
    """The current directory on sys.path, as `python -m` puts it, while the start is imported and
    called (it may import more when called); not after, where it could shadow any later import."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _function(start: Start) -> Any:
    module_name, _, attribute = start.source.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:
        where = user_location(exc)
        at = f" ({where[0]}:{where[1]})" if where else ""
        raise UsageError(f"{start.origin}: cannot load {start.source}{at}: {type(exc).__name__}: {exc}. "
                         "Give `module:function` as Python would import it from the current "
                         "directory.") from exc
    if not callable(found):
        raise UsageError(f"{start.origin}: {start.source} is not a function (it is a "
                         f"{type(found).__name__}).")
    return found


def _call(start: Start, engine: sa.engine.Engine) -> None:
    function = _function(start)
    try:
        with engine.connect() as connection:
            function(connection)
            compat.commit(connection)
    except UsageError:
        raise  # the guard refused a connection: its message says which
    except Exception as exc:
        where = user_location(exc)
        at = f" at {where[0]}:{where[1]}" if where else ""
        raise UsageError(f"{start.origin}: the starting schema {start.source} raised{at} "
                         f"{type(exc).__name__}: {exc}. It is called with a SQLAlchemy Connection to "
                         "an empty scratch database, before the first revision.") from exc
