"""The scratch area: the only databases migcheck ever connects to.

Two mechanisms keep the promise. An app's config holds scratch URLs from the moment a database URL
is written to it (project/redirect.py, which the runner enters beside this area), so whatever reads
it (Flask-SQLAlchemy, a factory that connects or creates the database before `db.init_app`, an old
env.py) gets a scratch URL, and a `postgresql://` URL needs no driver. And the guard (guard.py)
refuses any connection that is not to a scratch database, whoever opens it: a `do_connect` listener
on every Engine, and wrappers around the DB-API drivers' own connect functions, share one policy,
`Scratch.owns`.

The scratch databases are SQLite files in a temporary directory, or with `--db-url` databases on a
PostgreSQL or MySQL/MariaDB server (see servers.py).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy

from migcheck import compat
from migcheck.databases import guard, lockwait
from migcheck.databases.guard import Target
from migcheck.databases.servers import Server, parse_url
from migcheck.errors import UnsafeConnection
from migcheck.streams import tell, warn

_MAINTENANCE = "migcheck_maintenance"  # marks an app's connection to a MySQL server without a database
# PostgreSQL extensions that open connections from the server itself, which no client-side guard sees.
_REMOTE_EXTENSION = re.compile(
    r"\bCREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(?P<name>dblink|postgres_fdw)\b", re.IGNORECASE)


class Scratch:
    """Per-bind scratch databases: SQLite files in a private temporary directory, or on a server."""

    def __init__(self, root: Path, server: Server | None = None) -> None:
        self.root = root
        self.server = server
        self.written: dict[str | None, str] = {}  # bind key -> the URL last written to an app's config
        self.configured: dict[str | None, str] = {}  # bind key -> the URL Flask-SQLAlchemy was given
        # bind key -> the lock_timeout the app's connection options set (`-c lock_timeout=...` in
        # connect_args or the URL's `options`), which the scratch engines leave out
        self.lock_timeouts: dict[str | None, str] = {}
        self.engines: list[sa.engine.Engine] = []  # the app's engines, disposed before a drop
        self.errors: list[sa.exc.DBAPIError] = []  # every database error, also those a migration caught
        # cuts short a revision that waits for a lock its own migration holds (PostgreSQL)
        self.watchdog = lockwait.Watchdog(server) if server and server.backend == "postgresql" else None

    @property
    def dialect(self) -> str:
        """The scratch databases' dialect name: "sqlite", "postgresql", "mysql" or "mariadb"."""
        return self.server.backend if self.server else "sqlite"

    def url_for(self, bind_key: str | None) -> str:
        if self.server is not None:
            return compat.render_url(self.server.url_for(bind_key), hide_password=False)
        return f"sqlite:///{self.path_for(bind_key)}"

    def path_for(self, bind_key: str | None) -> Path:
        name = "default" if bind_key is None else "bind-" + re.sub(r"[^\w.-]", "_", bind_key)
        return self.root / f"{name}.sqlite"

    def bind_for(self, engine: sa.engine.Engine) -> str | None:
        """Which bind a scratch engine belongs to (env.py hands us engines, not bind keys)."""
        if self.server is not None:
            return self.server.bind_for(engine.url.database)
        for key in self.configured:
            if str(engine.url) == self.url_for(key):
                return key
        return None

    def owns(self, target: Target) -> bool:
        """The one policy of the guard: a scratch database of this run, or a private SQLite one."""
        if self.server is not None and self.server.owns(target):
            return True
        if target.backend != "sqlite" or target.database is None:
            return False
        if target.database in ("", ":memory:"):
            return True  # a private in-memory (or temporary) database touches nothing
        path = os.path.realpath(target.database)
        return path.startswith(os.path.realpath(self.root) + os.sep)

    def redirect_url(self, bind_key: str | None, url: Any) -> str:
        """The scratch URL that stands in for a configured one; remembers the configured one."""
        scratch_url = self.url_for(bind_key)
        if _safe(url) != _safe(scratch_url):  # not a scratch URL written back (a copy of the config)
            self.written[bind_key] = _safe(url)
        return scratch_url

    def redirect(self, app_config: dict[str, Any], db: SQLAlchemy) -> None:
        """Record the binds an app's Flask-SQLAlchemy uses, before it creates engines.

        The app's config already holds scratch URLs (redirect.py); rewriting them again here also
        covers a config that Flask did not make (an app that replaced `app.config`).
        """
        uri = app_config.get("SQLALCHEMY_DATABASE_URI")
        options = app_config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
        if uri is not None:
            app_config["SQLALCHEMY_DATABASE_URI"] = self.redirect_url(None, uri)
            self.configured[None] = self.written.get(None, _safe(uri))
            self._note_lock_timeout(None, self.configured[None], options)
        binds = {}
        for key, value in (app_config.get("SQLALCHEMY_BINDS") or {}).items():
            binds[key] = self.redirect_url(key, value["url"] if isinstance(value, dict) else value)
            self.configured[key] = self.written.get(key, binds[key])
            self._note_lock_timeout(key, self.configured[key],
                                    value if isinstance(value, dict) and "connect_args" in value else options)
        app_config["SQLALCHEMY_BINDS"] = binds
        # Options meant for the real server (connect_args, pool sizes) do not fit a scratch engine.
        app_config["SQLALCHEMY_ENGINE_OPTIONS"] = compat.scratch_engine_options()
        app_config["SQLALCHEMY_ECHO"] = False
        for key, value in compat.FLASK_SQLALCHEMY_QUIET_CONFIG.items():
            app_config.setdefault(key, value)
        db._engine_options = {}

    def _note_lock_timeout(self, bind_key: str | None, url: Any, options: dict[str, Any]) -> None:
        written = f"{unquote_plus(str(url))} {(options.get('connect_args') or {}).get('options', '')}"
        found = _LOCK_TIMEOUT.findall(written)
        if found and bind_key not in self.lock_timeouts:
            self.lock_timeouts[bind_key] = found[-1]

    def reset(self) -> list[str | None]:
        """Empty every scratch database; returns the binds that had tables in them."""
        had_tables = []
        for engine in self.engines:  # pooled connections would keep the old database alive
            engine.dispose()
        for key in self.configured:
            if self.server is not None:
                if self.server.reset(key):
                    had_tables.append(key)
                continue
            path = self.path_for(key)
            if path.exists():
                engine = sa.create_engine(self.url_for(key))
                if sa.inspect(engine).get_table_names():
                    had_tables.append(key)
                engine.dispose()
                path.unlink()
        if self.server is not None:
            self.server.drop_roles()  # what is left is dropped (or reported) at the end
        return had_tables


_LOCK_TIMEOUT = re.compile(r"-c\s*lock_timeout\s*=\s*([^\s&]+)")


def _safe(url: Any) -> str:
    """A configured URL fit to print: without its password."""
    try:
        return compat.render_url(compat.make_url(url), hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


def _throwaway_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    """Scratch SQLite files need no durability: skipping fsync makes migrations several times faster.

    The guard lets no other SQLite file through, so every SQLite connection here is a scratch one.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous = OFF")
        dbapi_connection.execute("PRAGMA journal_mode = MEMORY")


@contextmanager
def scratch_area(db_url: str | None = None, origin: str = "--db-url") -> Iterator[Scratch]:
    """A Scratch for the duration of the block; removed at exit, also on errors and Ctrl-C."""
    server = Server(parse_url(db_url, origin), origin) if db_url else None
    _reclaim_directories()
    scratch = Scratch(Path(tempfile.mkdtemp(prefix="migcheck-")), server)
    owner = _claim(scratch.root)

    def refuse_foreign(dialect: sa.engine.Dialect, conn_rec: Any, cargs: Any,
                       cparams: dict[str, Any]) -> Any:
        if server is not None and dialect is server.admin.dialect:
            with guard.trusted():  # migcheck's own admin connection
                return dialect.connect(*cargs, **cparams)
        target = guard.dialect_target(dialect, cargs, cparams)
        if server is not None and server.maintenance(target):
            conn_rec.info[_MAINTENANCE] = True  # watch_statement lets only two statements through
            with guard.trusted():
                return dialect.connect(*cargs, **cparams)
        run_guard.check(target)
        return None  # SQLAlchemy connects as usual, through the guarded driver

    def watch_statement(conn: sa.engine.Connection, cursor: Any, statement: str, parameters: Any,
                        context: Any, executemany: bool) -> None:
        """Note the roles a statement creates; refuse dblink / postgres_fdw, and what a connection
        without a database may not run."""
        assert server is not None  # listened to only with a server
        server.noticed(statement)
        remote = _REMOTE_EXTENSION.search(statement)
        if remote:
            run_guard.refuse(
                f"Refused CREATE EXTENSION {remote['name']} on the scratch database: {remote['name']} "
                "connects from the PostgreSQL server to any database on it (or on another server), "
                "where migcheck cannot see it, so the migrations' statements and the data check's "
                "generated rows could reach a real database. Check such revisions without --db-url, "
                "or leave the extension out of the revisions migcheck runs.")
        if conn.info.get(_MAINTENANCE) and not server.allows(statement):
            shown = " ".join(statement.split())
            run_guard.refuse(
                f"Refused {shown[:80]!r} on a connection to the {server.backend} server without a "
                "database: there migcheck lets an app only ask whether its (scratch) database exists "
                "or create it, as sqlalchemy-utils' database_exists / create_database do.")

    original_init_app = SQLAlchemy.init_app

    def init_app(self: SQLAlchemy, app: Any) -> None:
        scratch.redirect(app.config, self)
        original_init_app(self, app)
        scratch.engines.extend(compat.app_engines(self, app).values())

    def remember_error(context: sa.engine.ExceptionContext) -> None:
        if isinstance(context.sqlalchemy_exception, sa.exc.DBAPIError):
            scratch.errors.append(context.sqlalchemy_exception)

    sa.event.listen(sa.engine.Engine, "do_connect", refuse_foreign)
    if server is not None:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", watch_statement)
    sa.event.listen(sa.engine.Engine, "connect", _throwaway_sqlite)
    sa.event.listen(sa.engine.Engine, "handle_error", remember_error)
    SQLAlchemy.init_app = init_app  # type: ignore[method-assign]
    try:
        with guard.guarded(scratch.owns, os.fspath(scratch.root / "refusals")) as run_guard:
            try:
                if server is not None:
                    server.open()
                    if server.reclaimed:
                        tell(f"migcheck: dropped {len(server.reclaimed)} scratch database(s) that "
                             f"runs killed before they could clean up left on {server.label}: "
                             f"{', '.join(server.reclaimed)}")
                if scratch.watchdog is not None:
                    scratch.watchdog.start()
                yield scratch
            finally:  # told by the error that ends the run, or below
                if scratch.watchdog is not None:
                    scratch.watchdog.stop()
                refused = run_guard.take()
        if refused:  # the app (or a forked child of it) caught the error and went on: the run fails
            raise UnsafeConnection(refused[0])
    finally:
        if server is not None:  # first: the sooner a Ctrl-C cannot interrupt it, the better
            _drop_server_databases(scratch, server)
        SQLAlchemy.init_app = original_init_app  # type: ignore[method-assign]
        sa.event.remove(sa.engine.Engine, "do_connect", refuse_foreign)
        if server is not None:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", watch_statement)
        sa.event.remove(sa.engine.Engine, "connect", _throwaway_sqlite)
        sa.event.remove(sa.engine.Engine, "handle_error", remember_error)
        shutil.rmtree(scratch.root, ignore_errors=True)
        os.close(owner)


_OWNER = "owner.lock"  # in a scratch directory: locked (flock) by the run that owns it while it lives


def _claim(root: Path) -> int:
    """Lock the run's scratch directory for as long as the run lives (the lock dies with it). The
    lock file appears already locked, so another run never finds it free."""
    staged = root / f".{_OWNER}"
    owner = os.open(staged, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(owner, fcntl.LOCK_EX)
    os.rename(staged, root / _OWNER)
    return owner


def _reclaim_directories() -> None:
    """Remove the scratch directories of runs that were killed (SIGKILL) before they could: those
    whose lock nobody holds. A directory without a lock (made by another tool, or a moment ago) stays."""
    removed = []
    for path in sorted(Path(tempfile.gettempdir()).glob("migcheck-*")):
        try:
            lock = os.open(path / _OWNER, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            continue  # its run is alive
        try:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(os.fspath(path))
        finally:
            os.close(lock)
    if removed:
        tell(f"migcheck: removed {len(removed)} scratch director{'y' if len(removed) == 1 else 'ies'} "
             f"that runs killed before they could clean up left behind: {', '.join(removed)}")


def _drop_server_databases(scratch: Scratch, server: Server) -> None:
    """Drop the run's server databases; a second Ctrl-C or a SIGTERM must not cut this short."""
    main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        for engine in scratch.engines:
            engine.dispose()
        left = server.close()
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    if left:
        warn(left)
