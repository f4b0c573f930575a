"""Every difference between the library versions migcheck supports, behind one named function each.

migcheck runs inside the user's environment, so it meets Flask 1.1.4 to 3.x, Flask-SQLAlchemy 2.5
and 3.x, SQLAlchemy 1.3.24 to 2.x, Flask-Migrate 2.5 to 4.x and Alembic 1.7 on (the lanes in
noxfile.py test each). Like Alembic's `sqla_compat`, this is the one module that knows; the rest of
migcheck calls these functions and reads as if there were one version of each library.

Differences are detected by feature (does the API exist?), not by version number, except where a
version number is what decides (SQLAlchemy's PostgreSQL driver).
"""

from __future__ import annotations

import copy
import inspect
import re
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from unittest import mock

import sqlalchemy as sa
from alembic import util as _alembic_util
from alembic.autogenerate import render_python_code as _render_python_code
from alembic.operations import ops
from alembic.script import Script, ScriptDirectory
from alembic.util import load_python_file as load_python_file  # Alembic's import of a revision file
from flask import Flask
from sqlalchemy.engine.url import URL
from sqlalchemy.engine.url import make_url as _make_url
from sqlalchemy.orm import Mapper

SQLALCHEMY_2 = int(sa.__version__.split(".")[0]) >= 2
# 2.0 on: reflection leaves the results it cached as it returned them (before, SQLite's
# get_pk_constraint sorted the cached columns of get_columns in place)
REFLECTION_RESULTS_STABLE = SQLALCHEMY_2
# 1.4 on: engines cache compiled statements (create_engine's query_cache_size)
_CACHES_STATEMENTS = tuple(map(int, re.findall(r"\d+", sa.__version__)[:2])) >= (1, 4)


# --- SQLAlchemy: engines --------------------------------------------------------------------------

def scratch_engine_options() -> dict[str, Any]:
    """How the app's engines are created on the scratch databases: without a cache of compiled
    statements. A walk runs each statement once or twice, and the 500 statements SQLAlchemy keeps
    keep their tables alive: those of every batch copy Alembic made, dead, rescanned by the garbage
    collector (measured: 122 against 81 MB peak at N=200, 284 against 104 MB at N=1000)."""
    return {"query_cache_size": 0} if _CACHES_STATEMENTS else {}


# --- SQLAlchemy: URLs ---------------------------------------------------------------------------

def make_url(text: str | URL) -> URL:
    """A URL from a string (`sqlalchemy.engine.make_url` is 1.4+; `engine.url.make_url` is everywhere).

    Anything else is an ArgumentError, as a malformed string is (1.4 hands other objects back)."""
    if not isinstance(text, (str, URL)):
        raise sa.exc.ArgumentError(f"Could not parse SQLAlchemy URL from {type(text).__name__} {text!r}")
    return _make_url(text)


def render_url(url: URL, hide_password: bool = True) -> str:
    """The URL as text (`render_as_string` is 1.4+; 1.3's `str(url)` shows the password)."""
    if hasattr(url, "render_as_string"):
        return url.render_as_string(hide_password=hide_password)
    legacy: Any = url
    return str(legacy.__to_string__(hide_password=hide_password))


def url_with(url: URL, **parts: Any) -> URL:
    """A copy of the URL with the parts given as not None replaced, as `.set()` does (1.4+ URLs
    are immutable with `.set()`; 1.3 URLs are mutable and have no `.set()`)."""
    if hasattr(url, "set"):
        return url.set(**parts)
    changed: Any = copy.copy(url)
    changed.query = dict(url.query)
    for name, value in parts.items():
        if value is not None:
            setattr(changed, name, value)
    return changed


def import_dbapi(url: URL) -> Any:
    """Import the URL's driver module; ImportError when it is not installed (2.0 renamed the
    dialect classmethod `dbapi()` to `import_dbapi()`)."""
    dialect: Any = url.get_dialect()
    if hasattr(dialect, "import_dbapi"):
        return dialect.import_dbapi()
    return dialect.dbapi()


def postgresql_driver() -> str:
    """The PostgreSQL driver migcheck uses: psycopg (3) has a dialect from SQLAlchemy 2.0 on only."""
    return "psycopg" if SQLALCHEMY_2 else "psycopg2"


def other_postgresql_drivers() -> tuple[str, ...]:
    """Drivers a project may have instead: SQLAlchemy 1.3's pg8000 dialect decodes column names as
    bytes, which no pg8000 for Python 3 returns."""
    return ("psycopg2", "pg8000") if not sa.__version__.startswith("1.3.") else ()


# --- SQLAlchemy: connections and reflection -----------------------------------------------------

def exec_sql(connection: sa.engine.Connection, statement: str, parameters: Any = None) -> Any:
    """Run a plain SQL string as the driver takes it (`exec_driver_sql` is 1.4+; 1.3 runs a
    string given to `execute` the same way)."""
    args = () if parameters is None else (parameters,)
    if hasattr(connection, "exec_driver_sql"):
        return connection.exec_driver_sql(statement, *args)
    legacy: Any = connection
    return legacy.execute(statement, *args)


def driver_connection(connection: sa.engine.Connection) -> Any:
    """The DBAPI driver's own connection under a SQLAlchemy one (`driver_connection` from 2.0 on;
    before, the pool's proxy holds it as `connection`)."""
    fairy: Any = connection.connection
    return getattr(fairy, "driver_connection", None) or getattr(fairy, "connection", None)


def outside_transaction(connection: sa.engine.Connection) -> bool:
    """Whether the server is outside a transaction block although the driver may not know it: after
    a revision's own `op.execute("commit")`, psycopg2 sends no BEGIN, and a SAVEPOINT fails
    (psycopg2 and psycopg 3 tell the server's status, IDLE being 0; other drivers: assumed inside)."""
    info = getattr(driver_connection(connection), "info", None)
    return getattr(info, "transaction_status", None) == 0


def hold_transaction(connection: sa.engine.Connection) -> Any:
    """A SQLAlchemy transaction for statements that must not be committed one by one (None: one is
    open already). SQLAlchemy before 2.0 commits after each DDL statement run outside a transaction
    (autocommit); 2.0 never does. pysqlite sends nothing for the begin."""
    return None if connection.in_transaction() else connection.begin()


@contextmanager
def savepoint(connection: sa.engine.Connection) -> Iterator[None]:
    """A savepoint around what may fail; outside a transaction block each statement is its own
    transaction, so a failed one leaves nothing behind without it."""
    if outside_transaction(connection):
        yield
        return
    with connection.begin_nested():
        yield


@contextmanager
def unprepared(connection: sa.engine.Connection | None) -> Iterator[None]:
    """No server-side prepared statements for what runs on `connection` in the block.

    psycopg 3 prepares a query once it has run `prepare_threshold` times (default 5) on a
    connection, and forgets it only after a statement whose status it recognizes as DDL: DDL in a
    DO block or a function changes a table's shape unseen, and the prepared `SELECT *` then fails
    with "cached plan must not change result type". The other drivers SQLAlchemy uses send each
    statement unprepared (psycopg2, PyMySQL, mysqlclient) or as an unnamed statement (pg8000).
    """
    driver = driver_connection(connection) if connection is not None else None
    if driver is None or not hasattr(driver, "prepare_threshold"):
        yield
        return
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = threshold


def backend_pid(dbapi_connection: Any) -> int | None:
    """The server's id for a driver's connection, as the driver knows it without a round trip
    (psycopg 3 and psycopg2 2.8+: `info.backend_pid`; older psycopg2: `get_backend_pid()`; PyMySQL
    and mysqlclient: `thread_id()`); None for a driver that does not say."""
    pid = getattr(getattr(dbapi_connection, "info", None), "backend_pid", None)
    for name in ("get_backend_pid", "thread_id"):
        ask = getattr(dbapi_connection, name, None)
        if pid is None and callable(ask):
            pid = ask()
    return pid if isinstance(pid, int) else None


def commit(connection: sa.engine.Connection) -> None:
    """Commit what was run on a connection from `engine.connect()`: 1.4's future and 2.x connections
    begin a transaction by themselves and need it; 1.3/1.4 legacy ones committed each statement."""
    finish = getattr(connection, "commit", None)
    if finish is not None:
        finish()


def sequence_names(connection: sa.engine.Connection, schema: str | None) -> list[str]:
    """PostgreSQL sequences in a schema (the inspector has `get_sequence_names` from 1.4 on)."""
    inspector = sa.inspect(connection)
    if hasattr(inspector, "get_sequence_names"):
        return list(inspector.get_sequence_names(schema))
    rows = exec_sql(connection, "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                                "ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = %(schema)s",
                    {"schema": schema or "public"})
    return [str(name) for (name,) in rows]


# What `reflected_tables` tells of each table, as `Inspector.get_<aspect>(table)` gives it.
REFLECTED_ASPECTS = ("columns", "pk_constraint", "indexes", "unique_constraints", "foreign_keys")


def reflected_tables(inspector: Any, tables: list[str]) -> dict[str, dict[str, Any]]:
    """table -> aspect (REFLECTED_ASPECTS) -> what the inspector tells of it, for tables of the
    default schema.

    SQLAlchemy 2.0 reflects an aspect of all tables at once (`get_multi_<aspect>`: one query on
    PostgreSQL, instead of one per table); 1.3 and 1.4 ask table by table."""
    if not tables:
        return {}
    if not hasattr(inspector, "get_multi_columns"):
        return {table: {aspect: getattr(inspector, f"get_{aspect}")(table) for aspect in REFLECTED_ASPECTS}
                for table in tables}
    found = {aspect: getattr(inspector, f"get_multi_{aspect}")(filter_names=tables)
             for aspect in REFLECTED_ASPECTS}
    empty: dict[str, Any] = {"pk_constraint": {}}
    return {table: {aspect: found[aspect].get((None, table), empty.get(aspect, []))
                    for aspect in REFLECTED_ASPECTS}
            for table in tables}


def reflect_table(name: str, metadata: sa.MetaData, connection: sa.engine.Connection) -> sa.Table:
    """A reflected table, without the tables its foreign keys refer to (`resolve_fks`, from 1.3).
    SQLAlchemy 1.3 needs `autoload=True` beside `autoload_with`; 2.0 removed it."""
    if sa.__version__.startswith("1.3."):
        return sa.Table(name, metadata, autoload=True, autoload_with=connection, resolve_fks=False)
    return sa.Table(name, metadata, autoload_with=connection, resolve_fks=False)


def reflect_tables(names: list[str], metadata: sa.MetaData, connection: sa.engine.Connection
                   ) -> tuple[dict[str, sa.Table], dict[str, Exception]]:
    """Reflected tables (as `reflect_table`), and why each one that cannot be reflected cannot.
    SQLAlchemy 2.0 reflects them all at once (on PostgreSQL one query per aspect, not per table);
    where that fails, and before 2.0, they are reflected one by one."""
    if SQLALCHEMY_2 and names:
        try:
            metadata.reflect(bind=connection, only=names, resolve_fks=False)
            return {name: metadata.tables[name] for name in names}, {}
        except Exception:  # one of them: found below, table by table
            metadata.clear()
    tables, errors = {}, {}
    for name in names:
        try:
            tables[name] = reflect_table(name, metadata, connection)
        except Exception as exc:
            errors[name] = exc
    return tables, errors


def is_mariadb(dialect: sa.engine.Dialect) -> bool:
    """A MySQL dialect connected to MariaDB (`is_mariadb` from 1.4; 1.3 has `_is_mariadb`)."""
    return bool(getattr(dialect, "is_mariadb", None) or getattr(dialect, "_is_mariadb", False))


def sqlite_type(dialect: sa.engine.Dialect, declared: str) -> sa.types.TypeEngine[Any]:
    """The type SQLAlchemy's SQLite dialect reflects for a column declared `declared` (the one
    function its get_columns uses, private in every release)."""
    return dialect._resolve_type_affinity(declared)  # type: ignore[attr-defined]


# --- SQLAlchemy: columns and types --------------------------------------------------------------

def database_generated(column: sa.Column[Any]) -> bool:
    """A computed or identity column, whose values the database gives (`identity` is 1.4+)."""
    return getattr(column, "computed", None) is not None or getattr(column, "identity", None) is not None


def stored_type(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    """The type a TypeDecorator stores as (`impl_instance` is 1.4+; 1.3 keeps it in `impl`), or a
    PostgreSQL domain is over (2.0 reflects a domain as DOMAIN; before, as the type it is over)."""
    if type(type_).__name__ == "DOMAIN" and getattr(type_, "data_type", None) is not None:
        return stored_type(type_.data_type)  # type: ignore[attr-defined]
    if not isinstance(type_, sa.types.TypeDecorator):
        return type_
    return getattr(type_, "impl_instance", None) or type_.impl  # type: ignore[return-value]


def is_uuid(type_: sa.types.TypeEngine[Any]) -> bool:
    """A UUID column: `sa.Uuid` exists from 2.0; before, only the dialects' UUID types (by name)."""
    uuid_type = getattr(sa, "Uuid", None)
    return (uuid_type is not None and isinstance(type_, uuid_type)) or type(type_).__name__ == "UUID"


# --- Flask ----------------------------------------------------------------------------------------

# Flask < 2.2 words its app-loading errors differently: the current wording, whatever the release.
_FLASK_MESSAGES = (
    (re.compile(r"Could not locate a Flask application\. You did not provide .*", re.DOTALL),
     "Could not locate a Flask application. Use the 'flask --app' option, 'FLASK_APP' environment "
     "variable, or a 'wsgi.py' or 'app.py' file in the current directory."),
    (re.compile(r"^module '([^']+)' has no attribute '([^']+)'$"), r"Failed to find attribute '\2' in '\1'."),
    (re.compile(r'"([^"\s]+)"'), r"'\1'"),  # Flask 1.x quotes names with double quotes
)


def flask_cli_message(message: str) -> str:
    """A `NoAppException` message in the wording of the current Flask release."""
    for pattern, replacement in _FLASK_MESSAGES:
        message = pattern.sub(replacement, message)
    return message


# --- Flask-SQLAlchemy and the declarative registry ----------------------------------------------

# Flask-SQLAlchemy 2.x warns at every load of an app that leaves this unset; its value changes
# nothing migcheck looks at (it only turns model change signals on), so a run sets it when missing.
FLASK_SQLALCHEMY_QUIET_CONFIG: dict[str, Any] = {"SQLALCHEMY_TRACK_MODIFICATIONS": False}


def app_engines(db: Any, app: Flask) -> dict[str | None, sa.engine.Engine]:
    """bind key -> engine of an app, creating them if need be.

    Flask-SQLAlchemy 3 creates every engine in `init_app` (`db._app_engines`); 2.x creates each
    lazily in `db.get_engine(app, bind)` from `app.config` (so a config change after `init_app`
    still counts there).
    """
    if hasattr(db, "_app_engines"):
        return dict(db._app_engines[app])
    binds: list[str | None] = [None, *(app.config.get("SQLALCHEMY_BINDS") or ())]
    return {bind: db.get_engine(app, bind) for bind in binds}


def metadatas(db: Any) -> list[sa.MetaData]:
    """Every MetaData of the db: one per bind in Flask-SQLAlchemy 3, one for all binds in 2.x."""
    if hasattr(db, "metadatas"):
        return list(db.metadatas.values())
    return [db.metadata]


def bind_metadata(db: Any, bind: str | None) -> str | None:
    """The expression for the MetaData of `bind`'s models alone, or None where there is none:
    Flask-SQLAlchemy 2.x keeps every bind's tables in its one `db.metadata`."""
    if hasattr(db, "metadatas"):
        return f"db.metadatas[{bind!r}]"
    if bind is None and not any(key for key, _ in bound_tables(db)):
        return "db.metadata"
    return None


def bound_tables(db: Any) -> list[tuple[str | None, sa.Table]]:
    """(bind key, table) for every table of the db.

    Flask-SQLAlchemy 3 keeps a MetaData per bind; 2.x keeps all in one, with `info["bind_key"]`.
    """
    if hasattr(db, "metadatas"):
        return [(key, table) for key, metadata in db.metadatas.items() for table in metadata.tables.values()]
    return [(table.info.get("bind_key"), table) for table in db.metadata.tables.values()]


def mappers(db: Any) -> list[Mapper]:
    """The mappers of the db's models (`registry.mappers` is 1.4+; 1.3 has the declarative class
    registry, name -> class)."""
    registry = getattr(db.Model, "registry", None)
    if registry is not None:
        return list(registry.mappers)
    classes = db.Model._decl_class_registry.values()
    return [cls.__mapper__ for cls in classes if isinstance(cls, type) and hasattr(cls, "__mapper__")]


# --- Flask-Migrate and Alembic ------------------------------------------------------------------

# What Flask-Migrate 4 gives `context.configure()` unless told otherwise (older releases give
# nothing, and Alembic before 1.12 does not compare types by default). migcheck applies them on
# every stack, under what env.py and `Migrate(...)` say, so a run finds the same drift everywhere.
MIGRATE_DEFAULTS: dict[str, Any] = {"compare_type": True, "render_as_batch": True}


def produce_migrations(context: Any, metadata: Any, info_cache: dict[Any, Any] | None) -> ops.MigrationScript:
    """Alembic's `produce_migrations`, its inspector starting from `info_cache` (SQLAlchemy's cache
    of reflection results, state/reflected.py), which Alembic takes no argument for: the same
    steps as its own, in every release from 1.7."""
    from alembic.autogenerate import compare
    from alembic.autogenerate.api import AutogenContext, produce_migrations

    if info_cache is None:
        return produce_migrations(context, metadata)
    autogen = AutogenContext(context, metadata=metadata)
    autogen.inspector.info_cache = info_cache  # made on first use, kept for the whole compare
    script = ops.MigrationScript(rev_id=None, upgrade_ops=ops.UpgradeOps([]),
                                 downgrade_ops=ops.DowngradeOps([]))
    compare._populate_migration_script(autogen, script)
    return script


def render_python_code(operations: ops.UpgradeOps, **options: Any) -> str:
    """Alembic's `render_python_code`, given only the options this release takes
    (1.7 and 1.8 have no `user_module_prefix`)."""
    accepted = inspect.signature(_render_python_code).parameters
    return _render_python_code(operations, **{k: v for k, v in options.items() if k in accepted})


def sqlite_server_default_differs(inspected_default: str | None,
                                  rendered_metadata_default: str | None) -> bool:
    """Alembic's SQLite server-default comparison as its newer releases make it.

    Older releases (1.7, 1.8) strip the parentheses SQLite reports around an expression default
    from the model's side only, so an unchanged `server_default=func.now()` reads as a change
    from `(CURRENT_TIMESTAMP)` to `CURRENT_TIMESTAMP`.
    """
    def bare(default: str | None) -> str | None:
        if default is None:
            return None
        return re.sub(r"^\"?'(.+)'\"?$", r"\1", re.sub(r"^\((.+)\)$", r"\1", default))

    return bare(inspected_default) != bare(rendered_metadata_default)


@contextmanager
def revision_files_loaded_by(load: Callable[[Any, Any], ModuleType]) -> Iterator[None]:
    """ScriptDirectory loading each revision file with `load` in place of Alembic's
    `load_python_file(directory, filename)` (which every release since 1.7 calls through alembic.util)."""
    with mock.patch.object(_alembic_util, "load_python_file", load):
        yield


def load_revisions(script: ScriptDirectory) -> list[Script]:
    """Every revision file, duplicate ids included, in file name order (Alembic's one loader;
    1.7 lists a directory in the file system's order, later releases sort it)."""
    return sorted(script._load_revisions(), key=lambda revision: revision.path)


def unnamed_constraint(exc: BaseException) -> bool:
    """Whether a migration failed on a constraint without a name where one is needed (a drop, or
    batch mode). Alembic's batch mode says so (ValueError) on every version, SQLAlchemy's DROP
    CONSTRAINT too (CompileError), but on MySQL/MariaDB SQLAlchemy fails inside `format_constraint`:
    an AssertionError from 2.0 on, a TypeError (`len(None)`) before."""
    if isinstance(exc, (AssertionError, TypeError)):
        return any(frame.f_code.co_name == "format_constraint"
                   for frame, _ in traceback.walk_tb(exc.__traceback__))
    return isinstance(exc, (ValueError, sa.exc.CompileError)) \
        and any(text in str(exc) for text in ("Constraint must have a name", "it has no name"))
