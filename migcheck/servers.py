"""Scratch databases on a real PostgreSQL or MySQL/MariaDB server (`--db-url`).

Given a server URL, migcheck creates one database per bind, named `migcheck_<random>_<bind>`, and
drops it at the end. Given a URL that names a database, it uses that database only if it holds no
tables, and empties it again at the end. The one other connection it opens is its own admin
connection, which runs nothing but those CREATE / DROP DATABASE statements (or, for a given
database, the emptiness check and the emptying).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from migcheck import compat
from migcheck.errors import UsageError

# backend -> (the driver migcheck installs, the extra that installs it)
_DRIVERS = {"postgresql": (compat.postgresql_driver(), "postgres"), "mysql": ("pymysql", "mysql"),
            "mariadb": ("pymysql", "mysql")}
_PG_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast"}
_MAX_NAME = 63  # PostgreSQL's identifier limit (MySQL's is 64)


def parse_url(text: str) -> sa.URL:
    """The --db-url as a URL with a driver migcheck knows, or a UsageError that says what is wrong."""
    try:
        url = compat.make_url(text)
    except sa.exc.ArgumentError:
        raise UsageError(f"--db-url: {text!r} is not a database URL; give one like "
                         "postgresql://USER@HOST:5432/ or mysql+pymysql://USER@HOST:3306/") from None
    backend = url.get_backend_name()
    if backend not in _DRIVERS:
        raise UsageError(f"--db-url: {url.drivername!r} is not supported: give a PostgreSQL or "
                         "MySQL/MariaDB server URL (SQLite is the default and needs no --db-url)")
    driver, extra = _DRIVERS[backend]
    if url.drivername == backend:
        url = compat.url_with(url, drivername=f"{backend}+{driver}")
    try:
        compat.import_dbapi(url)
    except ImportError as exc:
        install = (f'pip install "migcheck[{extra}]"' if url.get_driver_name() == driver
                   else f"install it, or use {backend}+{driver}:// with pip install \"migcheck[{extra}]\"")
        raise UsageError(f"--db-url needs the {url.get_driver_name()} driver, which is not installed "
                         f"({exc}): {install}") from None
    except sa.exc.NoSuchModuleError:
        raise UsageError(f"--db-url: unknown driver in {url.drivername!r}; use {backend}+{driver}://") \
            from None
    return url


class Server:
    """The scratch databases of one run on one server."""

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        self.backend = url.get_backend_name()
        self.given = url.database or None  # a database named in the URL: use it, never create or drop
        self.token = secrets.token_hex(4)
        self.names: dict[str | None, str] = {}  # bind key -> scratch database name
        self.created: list[str] = []
        admin_database = self.given or ("postgres" if self.backend == "postgresql" else None)
        self.admin = sa.create_engine(compat.url_with(url, database=admin_database), poolclass=NullPool,
                                      isolation_level="AUTOCOMMIT")
        # Where the driver connects (host, port, also from a ?host= socket path), to match connections.
        self.where = self.admin.dialect.create_connect_args(self.admin.url)[1]

    @property
    def label(self) -> str:
        return compat.render_url(compat.url_with(self.url, database=None), hide_password=True)

    def open(self) -> None:
        """Connect before the app loads, so that a wrong URL, a missing privilege or a non-empty
        given database stops the run with an error about the server, not about the app."""
        if not self.given:
            self.url_for(None)  # the default bind's database; nearly every app has one
            return
        with self._admin() as connection:
            tables = _tables(connection)
        if tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise UsageError(
                f"--db-url names the database {self.given!r}, which already holds tables ({shown}). "
                "migcheck only works in an empty database, which it fills and empties again: give "
                "an empty one, or a URL without a database name so that migcheck creates (and drops) "
                "its own.")

    def url_for(self, bind_key: str | None) -> sa.URL:
        """The scratch database of a bind, created on first use."""
        if bind_key not in self.names:
            if self.given:
                if self.names:
                    raise UsageError(
                        f"--db-url names one database ({self.given!r}), but the app has several "
                        f"(binds: {', '.join(_bind_label(k) for k in [*self.names, bind_key])}). "
                        "Give a URL without a database name so that migcheck creates one per bind.")
                self.names[bind_key] = self.given
            else:
                self.names[bind_key] = self._create(self._name_for(bind_key))
        return compat.url_with(self.url, database=self.names[bind_key])

    def bind_for(self, database: str | None) -> str | None:
        return next((key for key, name in self.names.items() if name == database), None)

    def owns(self, dialect: sa.engine.Dialect, cparams: dict[str, Any]) -> bool:
        """A connection to one of this run's scratch databases, or migcheck's own admin connection."""
        if dialect is self.admin.dialect:
            return True
        if dialect.name != self.admin.dialect.name:
            return False
        database = cparams.get("dbname") or cparams.get("database") or cparams.get("db")
        return (database in self.names.values() and cparams.get("host") == self.where.get("host")
                and cparams.get("port") == self.where.get("port"))

    def reset(self, bind_key: str | None) -> bool:
        """Empty a bind's scratch database; True if it held tables."""
        name = self.names[bind_key]
        if self.given:
            with self._admin() as connection:
                had_tables = bool(_tables(connection))
                _empty(connection)
            return had_tables
        engine = sa.create_engine(compat.url_with(self.url, database=name), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                had_tables = bool(_tables(connection))
                leftovers = had_tables or _types_or_sequences(connection)
        finally:
            engine.dispose()
        if leftovers:  # a new database is the one sure way to empty it (and CREATE DATABASE is slow)
            with self._admin() as connection:
                _drop(connection, name)
                compat.exec_sql(connection, f"CREATE DATABASE {_quote(connection, name)}")
        return had_tables

    def close(self) -> str | None:
        """Drop what this run created, or empty the given database; None, or what is left to do."""
        if not self.created and not (self.given and self.names):
            return None
        try:
            with self._admin() as connection:
                if self.given and self.names:
                    _empty(connection)
                for name in list(self.created):
                    _drop(connection, name)
                    self.created.remove(name)
        except (sa.exc.SQLAlchemyError, UsageError) as exc:
            what = (f"drop the database(s) {', '.join(self.created)}" if self.created
                    else f"empty the database {self.given}")
            return f"could not clean up on {self.label} ({exc}); {what} by hand"
        return None

    def _admin(self) -> sa.engine.Connection:
        try:
            connection = self.admin.connect()
        except sa.exc.DBAPIError as exc:
            raise UsageError(f"--db-url: cannot connect to {self.label} as "
                             f"{self.url.username or 'the default user'}: {_error(exc)}") from None
        if self.backend != "postgresql":
            compat.exec_sql(connection, "SET SESSION lock_wait_timeout = 30")
        return connection

    def _name_for(self, bind_key: str | None) -> str:
        bind = "default" if bind_key is None else re.sub(r"[^a-z0-9_]", "_", bind_key.lower())
        base = f"migcheck_{self.token}_{bind}"[:_MAX_NAME]
        name, number = base, 1
        while name in self.names.values():
            number += 1
            name = f"{base[:_MAX_NAME - 4]}_{number}"
        return name

    def _create(self, name: str) -> str:
        with self._admin() as connection:
            self.created.append(name)  # first: a Ctrl-C right after the CREATE must still drop it
            try:
                compat.exec_sql(connection, f"CREATE DATABASE {_quote(connection, name)}")
            except sa.exc.DBAPIError as exc:
                self.created.remove(name)
                raise UsageError(f"--db-url: cannot create the scratch database {name!r} on "
                                 f"{self.label}: {_error(exc)}. {self._grant_advice()}") from None
        return name

    def _grant_advice(self) -> str:
        user = self.url.username or "your_user"
        if self.backend == "postgresql":
            grant = f'ALTER ROLE "{user}" CREATEDB;'
            example = "postgresql://USER@HOST:5432/empty_db"
        else:
            grant = f"GRANT ALL PRIVILEGES ON `migcheck\\_%`.* TO '{user}'@'%';"
            example = "mysql+pymysql://USER@HOST:3306/empty_db"
        return (f"Let the user create databases ({grant}), or create an empty database for "
                f"migcheck and name it in the URL ({example}).")


def _bind_label(key: str | None) -> str:
    return "default" if key is None else repr(key)


def _error(exc: sa.exc.DBAPIError) -> str:
    return " ".join(str(exc.orig).split()) if exc.orig is not None else str(exc)


def _quote(connection: sa.engine.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(name)


def _drop(connection: sa.engine.Connection, name: str) -> None:
    quoted = _quote(connection, name)
    if connection.dialect.name == "postgresql":
        # FORCE ends connections left open by an interrupted run (PostgreSQL 13+).
        force = " WITH (FORCE)" if (connection.dialect.server_version_info or (0,)) >= (13,) else ""
        compat.exec_sql(connection, f"DROP DATABASE IF EXISTS {quoted}{force}")
        return
    processes = compat.exec_sql(
        connection, "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
        (name,))
    for (process,) in processes:
        compat.exec_sql(connection, f"KILL CONNECTION {int(process)}")
    compat.exec_sql(connection, f"DROP DATABASE IF EXISTS {quoted}")


def _schemas(connection: sa.engine.Connection) -> list[str | None]:
    if connection.dialect.name != "postgresql":
        return [None]  # MySQL: the connection's database
    names = sa.inspect(connection).get_schema_names()
    return [s for s in names if s not in _PG_SYSTEM_SCHEMAS and not s.startswith("pg_")]


def _tables(connection: sa.engine.Connection) -> list[str]:
    inspector = sa.inspect(connection)
    return [f"{schema}.{name}" if schema and schema != "public" else name
            for schema in _schemas(connection)
            for name in inspector.get_table_names(schema) + inspector.get_view_names(schema)]


def _types_or_sequences(connection: sa.engine.Connection) -> bool:
    """PostgreSQL objects that outlive a downgrade which drops the tables but forgets the types."""
    if connection.dialect.name != "postgresql":
        return False
    inspector = sa.inspect(connection)
    return any(inspector.get_enums(schema) or compat.sequence_names(connection, schema)  # type: ignore[attr-defined]
               for schema in _schemas(connection))


def _empty(connection: sa.engine.Connection) -> None:
    """Remove every table, view, sequence and enum type from a given (formerly empty) database."""
    inspector = sa.inspect(connection)
    postgres = connection.dialect.name == "postgresql"
    cascade = " CASCADE" if postgres else ""
    if not postgres:
        compat.exec_sql(connection, "SET FOREIGN_KEY_CHECKS = 0")
    for schema in _schemas(connection):
        prefix = f"{_quote(connection, schema)}." if schema else ""
        for view in inspector.get_view_names(schema):
            compat.exec_sql(connection, f"DROP VIEW IF EXISTS {prefix}{_quote(connection, view)}{cascade}")
        for table in inspector.get_table_names(schema):
            compat.exec_sql(connection, f"DROP TABLE IF EXISTS {prefix}{_quote(connection, table)}{cascade}")
        if postgres:
            for sequence in compat.sequence_names(connection, schema):
                compat.exec_sql(
                    connection, f"DROP SEQUENCE IF EXISTS {prefix}{_quote(connection, sequence)} CASCADE")
            for enum in inspector.get_enums(schema):  # type: ignore[attr-defined]
                compat.exec_sql(
                    connection, f"DROP TYPE IF EXISTS {prefix}{_quote(connection, enum['name'])} CASCADE")
    if not postgres:
        compat.exec_sql(connection, "SET FOREIGN_KEY_CHECKS = 1")
