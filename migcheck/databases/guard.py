"""The driver guard: while migcheck runs, every DB-API driver asks before it connects.

SQLAlchemy's `do_connect` event only sees connections made through an engine's normal path; a raw
`sqlite3.connect("real.db")`, `psycopg.connect(...)` or an engine with `creator=` goes around it.
So the drivers' own connect functions are wrapped for the duration of the run: each connection is
described as a Target (which server and database, or which SQLite file) and refused unless the
policy allows it.

A driver that is already imported is wrapped at once; the others are wrapped when something imports
them (an import hook), so a driver that is not installed, or not used, costs nothing. The wrappers
are module and class attributes: code imported after the guard starts is covered, but a function
taken with `from sqlite3 import connect` before it started, C-level entry points such as
`_sqlite3.connect` or `psycopg.pq.PGconn.connect`, and C extensions that link a client library
themselves are not.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType, ModuleType
from typing import Any, NamedTuple, NoReturn
from urllib.parse import parse_qs, unquote

from migcheck.errors import UnsafeConnection
from migcheck.usercode import is_user_code, relative


class Target(NamedTuple):
    """Where a connection goes."""

    backend: str  # "sqlite", "postgresql", "mysql", or the driver's name where migcheck has no scratch
    database: str | None  # SQLite: the file as given, ":memory:" or ""; servers: None when none is named
    host: str | None = None  # a server's host name or address, or its Unix socket path
    port: int | None = None

    def describe(self) -> str:
        where = f" on {self.host}:{self.port}" if self.host and self.port else (
            f" on {self.host}" if self.host else "")
        if self.database is not None:
            return f"{self.backend} database {self.database!r}{where}"
        return f"{self.backend} server{where} (no database named)" if where else f"{self.backend} database"


Allow = Callable[[Target], bool]

_trusted: contextvars.ContextVar[bool] = contextvars.ContextVar("migcheck_trusted", default=False)


@contextmanager
def trusted() -> Iterator[None]:
    """Let migcheck's own connections through (its admin connection, copies into its cache)."""
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


class Guard:
    """The policy of one run, and the connections it refused (an app may catch the error)."""

    def __init__(self, allow: Allow) -> None:
        self.allow = allow
        self.refused: list[UnsafeConnection] = []

    def check(self, target: Target) -> None:
        if _trusted.get() or self.allow(target):
            return
        self.refuse(
            f"Refused a connection to the {target.describe()}: migcheck only connects to its own "
            "scratch databases. Something in the app (or its env.py) connects to the configured "
            "database directly instead of through Flask-SQLAlchemy; make that connection lazy or read "
            "the URL from db.engine.")

    def refuse(self, message: str) -> NoReturn:
        """Raise (and remember) a refusal that names the line of the user's code that asked."""
        where = _user_caller(sys._getframe(1))
        at = f" It happens at {where[0]}:{where[1]}." if where else ""
        refusal = UnsafeConnection(message + at)
        self.refused.append(refusal)
        raise refusal


def _user_caller(frame: FrameType | None) -> tuple[str, int] | None:
    """The innermost frame of the user's code on the stack: the line that asked to connect."""
    while frame is not None:
        if is_user_code(frame.f_code.co_filename):
            return relative(frame.f_code.co_filename), frame.f_lineno
        frame = frame.f_back
    return None


# --- Reading each driver's connection arguments -------------------------------------------------

def _arguments(args: Sequence[Any], kwargs: Mapping[str, Any], positional: Sequence[str]) -> dict[str, Any]:
    """Keyword and positional arguments by name (positional ones in the driver's order)."""
    return {**dict(zip(positional, args, strict=False)), **kwargs}


def sqlite_target(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Target:
    named = _arguments(args, kwargs, ("database", "timeout", "detect_types", "isolation_level",
                                      "check_same_thread", "factory", "cached_statements", "uri"))
    database = named.get("database", "")
    database = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else str(database)
    if named.get("uri") and database.startswith("file:"):
        return Target("sqlite", _sqlite_uri_file(database))
    return Target("sqlite", database)


def _sqlite_uri_file(uri: str) -> str:
    """The file a `file:` URI opens; ":memory:" for a private in-memory database."""
    path, _, query = uri[len("file:"):].partition("?")
    params = parse_qs(query.split("#")[0])
    shared = params.get("cache") == ["shared"]
    if (params.get("mode") == ["memory"] or path == ":memory:") and not shared:
        return ":memory:"
    if path.startswith("//"):  # file://host/path: SQLite accepts only an empty host or localhost
        path = path[2:].partition("/")[2]
        path = "/" + path
    return unquote(path) or uri  # a shared in-memory database: matched by nobody


def postgres_target(params: Mapping[str, Any]) -> Target:
    """libpq parameters (dbname, host, hostaddr, port), with libpq's environment defaults."""
    database = params.get("dbname") or params.get("database") or os.environ.get("PGDATABASE")
    host = params.get("hostaddr") or params.get("host") or os.environ.get("PGHOST")
    return Target("postgresql", str(database) if database else None, str(host) if host else None,
                  _port(params.get("port") or os.environ.get("PGPORT"), 5432))


def mysql_target(params: Mapping[str, Any]) -> Target:
    database = params.get("database") or params.get("db")
    host = params.get("unix_socket") or params.get("host") or "localhost"
    return Target("mysql", str(database) if database else None, str(host), _port(params.get("port"), 3306))


def _port(value: Any, default: int) -> int | None:
    if value in (None, "", 0):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # e.g. libpq's "5432,5433" for several hosts: matched by nobody


# Arguments of psycopg's Connection.connect that are not libpq parameters.
_PSYCOPG_OPTIONS = ("autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory")


def _psycopg_target(conninfo: str = "", **kwargs: Any) -> Target:
    from psycopg.conninfo import conninfo_to_dict

    params = {key: value for key, value in kwargs.items() if key not in _PSYCOPG_OPTIONS}
    return postgres_target(conninfo_to_dict(conninfo, **params))


def _psycopg2_target(dsn: Any = None, *args: Any, **kwargs: Any) -> Target:
    from psycopg2.extensions import parse_dsn

    return postgres_target(parse_dsn(dsn or ""))


def dialect_target(dialect: Any, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Target:
    """Where a SQLAlchemy engine is about to connect (its dialect's arguments for the driver)."""
    if dialect.name == "sqlite":
        return sqlite_target(cargs, cparams)
    if dialect.name == "postgresql":
        return postgres_target(cparams)
    if dialect.name in ("mysql", "mariadb"):
        return mysql_target(cparams)
    database = cparams.get("database") or cparams.get("dbname") or (cargs[0] if cargs else None)
    return Target(dialect.name, str(database) if database else None, cparams.get("host"),
                  _port(cparams.get("port"), 0))


# --- Wrapping the drivers ---------------------------------------------------------------------------

class _Patch(NamedTuple):
    owner: Any  # a module or a class
    name: str
    original: Any  # what the owner held: a function, a classmethod, a builtin, a bound method


class _Patcher:
    """Puts wrappers in place and takes them away again."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.patches: list[_Patch] = []

    def wrap(self, owner: Any, name: str, target_of: Callable[..., Target], *, method: bool = False) -> None:
        """Check `target_of(*args, **kwargs)` before `owner.name(*args, **kwargs)` runs.

        For a method, `target_of` gets the instance (or class) too. An owner or attribute that this
        version of the driver does not have is left alone.
        """
        if owner is None:
            return
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if original is None:
            return
        function = original.__func__ if isinstance(original, classmethod) else original
        guard = self.guard

        @functools.wraps(function)
        def guarded_call(*args: Any, **kwargs: Any) -> Any:
            try:
                target = target_of(*(args if method else args[isinstance(original, classmethod):]),
                                   **kwargs)
            except Exception:  # arguments the driver itself could not read either
                driver = owner.__module__ if isinstance(owner, type) else owner.__name__
                target = Target(driver.split(".")[0], None)
            guard.check(target)
            return function(*args, **kwargs)

        setattr(owner, name, classmethod(guarded_call) if isinstance(original, classmethod) else guarded_call)
        self.patches.append(_Patch(owner, name, original))

    def restore(self) -> None:
        for patch in reversed(self.patches):
            setattr(patch.owner, patch.name, patch.original)
        self.patches.clear()


def _patch_sqlite3(patcher: _Patcher, module: ModuleType) -> None:
    patcher.wrap(module, "connect", lambda *a, **k: sqlite_target(a, k))
    patcher.wrap(module.dbapi2, "connect", lambda *a, **k: sqlite_target(a, k))  # SQLAlchemy's


def _patch_psycopg(patcher: _Patcher, module: ModuleType) -> None:
    patcher.wrap(module, "connect", _psycopg_target)  # `connect = Connection.connect`, bound at import
    patcher.wrap(getattr(module, "Connection", None), "connect", _psycopg_target)
    patcher.wrap(getattr(module, "AsyncConnection", None), "connect", _psycopg_target)


def _patch_psycopg2(patcher: _Patcher, module: ModuleType) -> None:
    patcher.wrap(module, "_connect", _psycopg2_target)  # what psycopg2.connect calls


def _patch_mysql_connection(positional: tuple[str, ...]) -> Callable[[_Patcher, ModuleType], None]:
    """PyMySQL and mysqlclient: `connect` is their Connection class, which also takes its arguments
    positionally (in this order)."""
    def patch(patcher: _Patcher, module: ModuleType) -> None:
        patcher.wrap(getattr(module, "Connection", None), "__init__",
                     lambda self, *a, **k: mysql_target(_arguments(a, k, positional)), method=True)
    return patch


def _mysql_connector_target(connection: Any) -> Target:
    """mysql.connector has applied its arguments, option files and failover by now."""
    return mysql_target({"database": connection._database, "host": connection._host,
                         "port": connection._port, "unix_socket": connection._unix_socket})


def _patch_mysql_connector(class_name: str) -> Callable[[_Patcher, ModuleType], None]:
    """The pure-Python and the C-extension connection classes open the socket in _open_connection."""
    def patch(patcher: _Patcher, module: ModuleType) -> None:
        patcher.wrap(getattr(module, class_name, None), "_open_connection", _mysql_connector_target,
                     method=True)
    return patch


def _patch_pg8000(patcher: _Patcher, module: ModuleType) -> None:
    positional = ("user", "host", "database", "port", "password", "source_address", "unix_sock")

    def target(self: Any, *args: Any, **kwargs: Any) -> Target:
        named = _arguments(args, kwargs, positional)
        host = named.get("unix_sock") or named.get("host", "localhost")
        return postgres_target({"dbname": named.get("database") or named.get("user"), "host": host,
                                "port": named.get("port")})

    patcher.wrap(getattr(module, "CoreConnection", None), "__init__", target, method=True)


def _refuse_all(name: str) -> Callable[[_Patcher, ModuleType], None]:
    """Drivers for databases migcheck has no scratch databases on: nothing of theirs gets through."""
    def patch(patcher: _Patcher, module: ModuleType) -> None:
        patcher.wrap(module, "connect", lambda *a, **k: Target(name, None))
    return patch


# module -> how to wrap it, applied once that module has been imported
_DRIVERS: dict[str, Callable[[_Patcher, ModuleType], None]] = {
    "sqlite3": _patch_sqlite3,
    "psycopg": _patch_psycopg,
    "psycopg2": _patch_psycopg2,
    "pymysql.connections": _patch_mysql_connection(("host", "user", "password", "database", "port",
                                                     "unix_socket")),
    "MySQLdb.connections": _patch_mysql_connection(("host", "user", "passwd", "db", "port", "unix_socket")),
    "mysql.connector.connection": _patch_mysql_connector("MySQLConnection"),
    "mysql.connector.connection_cext": _patch_mysql_connector("CMySQLConnection"),
    "pg8000.core": _patch_pg8000,
    "pyodbc": _refuse_all("pyodbc (SQL Server, ODBC)"),
    "pymssql": _refuse_all("pymssql (SQL Server)"),
    "oracledb": _refuse_all("oracledb (Oracle)"),
    "cx_Oracle": _refuse_all("cx_Oracle (Oracle)"),
}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Wraps a driver right after its module is first imported (importing them all would be slow)."""

    def __init__(self, patcher: _Patcher, pending: dict[str, Callable[[_Patcher, ModuleType], None]]) -> None:
        self.patcher = patcher
        self.pending = pending

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        patch = self.pending.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, lambda module: self._patch(fullname, module))
        return spec

    def _patch(self, fullname: str, module: ModuleType) -> None:
        patch = self.pending.pop(fullname, None)
        if patch is not None:
            patch(self.patcher, module)


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, after: Callable[[ModuleType], None]) -> None:
        self.loader = loader
        self.after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.after(module)

    def __getattr__(self, name: str) -> Any:  # get_data, get_resource_reader, is_package...
        return getattr(self.loader, name)


@contextmanager
def guarded(allow: Allow) -> Iterator[Guard]:
    """Wrap every DB-API driver for the duration of the block; unwrapped at exit, also on errors."""
    guard = Guard(allow)
    patcher = _Patcher(guard)
    pending = {}
    for name, patch in _DRIVERS.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(patcher, module)
        else:
            pending[name] = patch
    hook = _PatchOnImport(patcher, pending)
    sys.meta_path.insert(0, hook)
    try:
        yield guard
    finally:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        patcher.restore()
