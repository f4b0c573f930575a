"""The driver guard: from the start of a run until the process exits, every DB-API driver asks before
it connects.

SQLAlchemy's `do_connect` event only sees connections made through an engine's normal path; a raw
`sqlite3.connect("real.db")`, `psycopg.connect(...)` or an engine with `creator=` goes around it.
So every SQLite connection is checked by an audit hook (the `sqlite3.connect` event, raised by the C
code itself, so `_sqlite3.connect`, `sqlite3.Connection(...)` and a re-imported `sqlite3` are seen
too), and the other drivers' own connect functions are wrapped: each connection is described as a
Target (which server and database, or which SQLite file) and refused unless the policy allows it.

During a run the policy is the scratch area's; once the run is over it lets nothing but private
in-memory SQLite through, until the process exits: what the app leaves behind (an `atexit` hook, a
timer, a thread) must not reach the real database after the checks. Neither the hook nor the
wrappers are ever removed (a Python audit hook cannot be).

A driver that is already imported is wrapped at once; the others are wrapped when something imports
them (an import hook), so a driver that is not installed, or not used, costs nothing. The wrappers
are module and class attributes: code imported after the guard starts is covered, but C-level entry
points such as `psycopg.pq.PGconn.connect` and C extensions that link a client library themselves
are not.

A refusal in a forked child is written to the run's refusal log as well, which the parent reads:
the run fails there too.
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


def private_only(target: Target) -> bool:
    """The policy outside a run: a private in-memory (or temporary) SQLite database touches nothing."""
    return target.backend == "sqlite" and target.database in ("", ":memory:")


class Guard:
    """The policy in effect, and the connections refused (an app may catch the error)."""

    def __init__(self, allow: Allow) -> None:
        self.allow = allow
        self.running = False  # inside a run; after it, only private SQLite gets through
        self.refused: list[str] = []
        self.reported = 0  # how many of `refused` have been told to the user
        self.pid = os.getpid()  # the process that reports; a forked child writes to `log`
        self.log: str | None = None  # the run's refusal log (in its scratch area)
        self.log_read = 0  # bytes of `log` already taken

    def check(self, target: Target) -> None:
        if _trusted.get() or self.allow(target):
            return
        if self.running:
            self.refuse(
                f"Refused a connection to the {target.describe()}: migcheck only connects to its own "
                "scratch databases. Something in the app (or its env.py) connects to the configured "
                "database directly instead of through Flask-SQLAlchemy; make that connection lazy or "
                "read the URL from db.engine.")
        self.refuse(
            f"Refused a connection to the {target.describe()} after the checks had ended: until "
            "migcheck exits, nothing but its scratch databases may be reached. Something the app "
            "left behind (an atexit hook, a timer or a thread) connects to a database; do not start "
            "it when the app is loaded for checks (e.g. in a testing config).")

    def refuse(self, message: str) -> NoReturn:
        """Raise (and remember) a refusal that names the line of the user's code that asked."""
        where = _user_caller(sys._getframe(1))
        at = f" It happens at {where[0]}:{where[1]}." if where else ""
        refusal = UnsafeConnection(message + at)
        self.refused.append(str(refusal))
        if os.getpid() != self.pid and self.log is not None:  # a forked child: tell the parent
            try:
                with open(self.log, "a", encoding="utf-8") as log:
                    log.write(str(refusal).replace("\n", " ") + "\n")
            except OSError:
                pass  # the run is over and its area gone: the connection is refused all the same
        raise refusal

    def take(self) -> list[str]:
        """The refusals not told yet (also those forked children logged); from now on told."""
        found = self.refused[self.reported:]
        self.reported = len(self.refused)
        if self.log is not None and os.getpid() == self.pid:
            try:
                with open(self.log, "rb") as log:
                    log.seek(self.log_read)
                    logged = log.read()
            except OSError:
                logged = b""
            self.log_read += len(logged)
            found += logged.decode("utf-8", "replace").splitlines()
        return found


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
    return sqlite_file_target(named.get("database", ""), bool(named.get("uri")))


def sqlite_file_target(database: Any, uri: bool) -> Target:
    """A SQLite connection to `database` (a path, or a `file:` URI if `uri`)."""
    database = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else str(database)
    if uri and database.startswith("file:"):
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

class _Patcher:
    """Puts wrappers in place (for the rest of the process)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

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
        if getattr(function, "_migcheck_guarded", False):
            return  # a driver module imported again found the class it had, wrapped already
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

        guarded_call._migcheck_guarded = True  # type: ignore[attr-defined]
        setattr(owner, name, classmethod(guarded_call) if isinstance(original, classmethod) else guarded_call)


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
    """Wraps a driver right after its module is imported (importing them all would be slow); also a
    driver imported again after `del sys.modules[...]`, which is a new, unwrapped module."""

    def __init__(self, patcher: _Patcher) -> None:
        self.patcher = patcher

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        patch = _DRIVERS.get(fullname)
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
            spec.loader = _PatchingLoader(spec.loader, lambda module: patch(self.patcher, module))
        return spec


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


_process_guard: Guard | None = None  # installed by the first run, never removed


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Every audit event of the process goes through here: keep it cheap."""
    if event == "sqlite3.connect" and _process_guard is not None:
        # The event does not say whether `uri=True` was given: a `file:` name is read as a URI (as a
        # plain file name, "file:x.db" is a relative path outside the scratch area all the same).
        _process_guard.check(sqlite_file_target(args[0], True))


def _install() -> Guard:
    """The process's guard: the SQLite audit hook, the wrapped drivers and the import hook."""
    global _process_guard
    if _process_guard is not None:
        return _process_guard
    guard = Guard(private_only)
    patcher = _Patcher(guard)
    for name, patch in _DRIVERS.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(patcher, module)
    sys.meta_path.insert(0, _PatchOnImport(patcher))
    sys.addaudithook(_audit)
    _process_guard = guard
    return guard


@contextmanager
def guarded(allow: Allow, log: str | None = None) -> Iterator[Guard]:
    """`allow` decides during the block; after it, until the process exits, only private SQLite.

    `log`: where forked children write their refusals (a file in the run's scratch area).
    """
    guard = _install()
    guard.allow, guard.running, guard.log, guard.log_read = allow, True, log, 0
    try:
        yield guard
    finally:
        guard.allow, guard.running = private_only, False


def late_refusals() -> list[str]:
    """Refusals not told yet (none if no run started in this process)."""
    return _process_guard.take() if _process_guard is not None else []
