"""Scratch databases on a real PostgreSQL or MySQL/MariaDB server (`--db-url`).

Given a server URL, migcheck creates one database per bind, named `migcheck_r<token>_<bind>`, and
drops it at the end. For as long as the run lives it holds a lock named after its token on the
server (a PostgreSQL advisory lock, a MySQL named lock: both die with the session); at start it drops
the databases of runs whose lock nobody holds, which were killed before they could drop them
(databases named the old way, `migcheck_<hex>_<bind>`, are never touched: no lock tells about them).
Given a URL that names a database, it uses that database only if it holds nothing at all (no table,
view, sequence, type, routine, ...: anything the emptying might drop, or that would change what the
migrations do), and empties it again at the end. The one other connection it opens is its own admin
connection, which runs nothing but those CREATE / DROP DATABASE statements and the locks (or, for a
given database, the emptiness check and the emptying).

Roles and users live on the server, outside any database: the ones a run's statements create (and
that did not exist when it started) are dropped at the end too, and at each rebuild of the scratch
databases, so that the next `CREATE ROLE` / `CREATE USER` does not find them. Roles that existed
before the run stay, also when a revision names them; so do roles another session creates meanwhile.
Two runs on one server whose revisions create the same role would take it from each other (one's
CREATE ROLE fails, or its role is dropped under it): a run takes the server's roles lock before its
first CREATE ROLE / USER and holds it to its end, so such runs take turns there.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from migcheck import compat
from migcheck.databases.guard import Target, dialect_target
from migcheck.errors import UsageError

# backend -> (the driver migcheck installs, the extra that installs it)
_DRIVERS = {"postgresql": (compat.postgresql_driver(), "postgres"), "mysql": ("pymysql", "mysql"),
            "mariadb": ("pymysql", "mysql")}
# For a URL that names no driver, the others a project may have installed instead, in this order.
_OTHER_DRIVERS = {"postgresql": compat.other_postgresql_drivers(), "mysql": ("mysqldb", "mysqlconnector"),
                  "mariadb": ("mysqldb", "mysqlconnector")}
_PG_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast"}
MAX_NAME = 63  # PostgreSQL's identifier limit (MySQL's is 64)
# What sqlalchemy-utils runs on a MySQL connection without a database: a catalog query about one
# database by name, or CREATE DATABASE (with options such as CHARACTER SET).
_MAINTENANCE_STATEMENT = re.compile(
    r"\s*(?:SELECT\s+SCHEMA_NAME\s+FROM\s+INFORMATION_SCHEMA\.SCHEMATA\s+"
    r"WHERE\s+SCHEMA_NAME\s*=\s*'(?P<asked>\w+)'"
    r"|CREATE\s+DATABASE\s+(?P<created>`\w+`|\w+)[\w\s'`=-]*)\s*;?\s*",
    re.IGNORECASE)


def parse_url(text: str, origin: str = "--db-url") -> sa.URL:
    """The --db-url as a URL with a driver migcheck knows, or a UsageError that says what is wrong.

    `origin` names where the URL came from (the flag, the environment or pyproject.toml).
    """
    not_a_url = UsageError(f"{origin}: {text!r} is not a database URL; give one like "
                           "postgresql://USER@HOST:5432/ or mysql+pymysql://USER@HOST:3306/")
    try:
        url = compat.make_url(text)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise not_a_url from None
    if url.port is not None and not 0 < url.port < 65536:
        raise not_a_url
    backend = url.get_backend_name()
    if backend not in _DRIVERS:
        raise UsageError(f"{origin}: {url.drivername!r} is not supported: give a PostgreSQL or "
                         "MySQL/MariaDB server URL (SQLite is the default and needs no --db-url)")
    driver, extra = _DRIVERS[backend]
    if url.drivername == backend:  # ours, else the first other one the project has installed
        candidates = [compat.url_with(url, drivername=f"{backend}+{name}")
                      for name in dict.fromkeys((driver, *_OTHER_DRIVERS[backend]))]
        url = next((candidate for candidate in candidates if _importable(candidate)), candidates[0])
    try:
        compat.import_dbapi(url)
    except ImportError as exc:
        install = (f'pip install "migcheck[{extra}]"' if url.get_driver_name() == driver
                   else f"install it, or use {backend}+{driver}:// with pip install \"migcheck[{extra}]\"")
        raise UsageError(f"{origin} needs the {url.get_driver_name()} driver, which is not installed "
                         f"({exc}): {install}") from None
    except sa.exc.NoSuchModuleError:
        raise UsageError(f"{origin}: unknown driver in {url.drivername!r}; use {backend}+{driver}://") \
            from None
    return url


def _importable(url: sa.URL) -> bool:
    try:
        compat.import_dbapi(url)
    except (ImportError, sa.exc.NoSuchModuleError):
        return False
    return True


class Server:
    """The scratch databases of one run on one server."""

    def __init__(self, url: sa.URL, origin: str = "--db-url") -> None:
        self.url = url
        self.origin = origin  # where the URL came from, for error messages
        self.backend = url.get_backend_name()
        self.given = url.database or None  # a database named in the URL: use it, never create or drop
        self.token = secrets.token_hex(4)
        self.lock: sa.engine.Connection | None = None  # holds the run's lock on the server
        self.reclaimed: list[str] = []  # databases of killed runs dropped at start
        self.names: dict[str | None, str] = {}  # bind key -> scratch database name
        self.created: list[str] = []
        self.extensions: frozenset[str] = frozenset()  # those a given database held: kept
        self.schemas: frozenset[str | None] = frozenset()  # those a given database held: kept
        self.roles: frozenset[tuple[str, str]] | None = None  # (name, host) on the server at the start
        self.named_roles: set[str] = set()  # the roles and users the run's statements create
        self.roles_lock: sa.engine.Connection | None = None  # holds the server's roles lock
        admin_database = self.given or ("postgres" if self.backend == "postgresql" else None)
        self.admin = sa.create_engine(compat.url_with(url, database=admin_database), poolclass=NullPool,
                                      isolation_level="AUTOCOMMIT")
        # Where the driver connects (host, port, also from a ?host= socket path), to match connections.
        cargs, cparams = self.admin.dialect.create_connect_args(self.admin.url)
        self.where = dialect_target(self.admin.dialect, cargs, cparams)

    @property
    def label(self) -> str:
        return compat.render_url(compat.url_with(self.url, database=None), hide_password=True)

    def open(self) -> None:
        """Connect before the app loads, so that a wrong URL, a missing privilege or a non-empty
        given database stops the run with an error about the server, not about the app."""
        with self.connect_admin() as connection:
            self.roles = _roles(connection)
            if self.given:
                found = [content.label for content in _contents(connection)]
                self.extensions = _extensions(connection)
                self.schemas = frozenset(_schemas(connection))
        if not self.given:
            self.lock = self.connect_admin()
            _lock(self.lock, self.token, wait=True)  # before any database of this run exists
            self.reclaimed = self._reclaim()
            self.url_for(None)  # the default bind's database; nearly every app has one
            return
        remote = sorted(self.extensions & {"dblink", "postgres_fdw"})
        if remote:
            raise UsageError(
                f"{self.origin} names the database {self.given!r}, which has the extension "
                f"{' and '.join(remote)}: it connects from the server to other databases, where "
                "migcheck cannot see what the migrations (and the data check's generated rows) do. "
                "Give a database without it, or a URL without a database name.")
        if found:
            shown = ", ".join(found[:8]) + (f", and {len(found) - 8} more" if len(found) > 8 else "")
            raise UsageError(
                f"{self.origin} names the database {self.given!r}, which is not empty: it holds {shown}. "
                "migcheck only works in an empty database, which it fills and empties again: give "
                "an empty one, or a URL without a database name so that migcheck creates (and drops) "
                "its own.")

    def url_for(self, bind_key: str | None) -> sa.URL:
        """The scratch database of a bind, created on first use."""
        if bind_key not in self.names:
            if self.given:
                if self.names:
                    raise UsageError(
                        f"{self.origin} names one database ({self.given!r}), but the app has several "
                        f"(binds: {', '.join(_bind_label(k) for k in [*self.names, bind_key])}). "
                        "Give a URL without a database name so that migcheck creates one per bind.")
                self.names[bind_key] = self.given
            else:
                self.names[bind_key] = self._create(self._name_for(bind_key))
        return compat.url_with(self.url, database=self.names[bind_key])

    def bind_for(self, database: str | None) -> str | None:
        return next((key for key, name in self.names.items() if name == database), None)

    def owns(self, target: Target) -> bool:
        """A connection to one of this run's scratch databases (the admin connection is trusted)."""
        return self._here(target) and target.database in self.names.values()

    def maintenance(self, target: Target) -> bool:
        """An app's connection to this MySQL server without a database, as sqlalchemy-utils'
        `database_exists` / `create_database` open to ask about or create the app's database: let
        through, for the statements `allows` admits only. (On PostgreSQL, database_exists asks the
        URL's own database first, a scratch one; `postgres` is a database like any other: refused.)"""
        return self.backend != "postgresql" and self._here(target) and target.database is None

    def allows(self, statement: str) -> bool:
        """A statement fit for a connection without a database: it only asks whether a scratch
        database exists, or creates one (which exists already, so the server refuses it)."""
        names = set(self.names.values())
        match = _MAINTENANCE_STATEMENT.fullmatch(statement)
        return match is not None and (match["asked"] or match["created"].strip("`")) in names

    def _here(self, target: Target) -> bool:
        """A connection to this server (the same backend, host and port as --db-url)."""
        return (target.backend == self.where.backend
                and (target.host, target.port) == (self.where.host, self.where.port))

    def noticed(self, statement: str) -> None:
        """A statement run on a scratch database: remember the roles and users it creates."""
        for match in _CREATES_ROLE.finditer(statement):
            self._lock_roles()
            name = match["name"]
            self.named_roles.add(name[1:-1] if name[0] in "\"'`" else name.lower())

    def _lock_roles(self) -> None:
        """Wait for the roles lock (another run that creates roles to end), then count the roles on
        the server again: the other run dropped its own, and this one has created none yet."""
        if self.roles_lock is not None:
            return
        self.roles_lock = self.connect_admin()
        if self.backend == "postgresql":
            compat.exec_sql(self.roles_lock, f"SELECT pg_advisory_lock({_PG_ROLES_LOCK}, 0)")
        else:
            compat.exec_sql(self.roles_lock, "SELECT GET_LOCK('migcheck_roles', 86400)")
        self.roles = _roles(self.roles_lock)

    def reset(self, bind_key: str | None) -> bool:
        """Empty a bind's scratch database; True if it held tables. The roles the run created stay
        until drop_roles (after every bind's reset: one may hold privileges in several databases)."""
        name = self.names[bind_key]
        if self.given:
            with self.connect_admin() as connection:
                had_tables = bool(_tables(connection))
                _empty(connection, self.extensions, self.schemas)
            return had_tables
        engine = sa.create_engine(compat.url_with(self.url, database=name), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                had_tables = bool(_tables(connection))
                # A new role may have privileges here: dropping the database revokes them.
                leftovers = (had_tables or _types_or_sequences(connection)
                             or set(_schemas(connection)) - {"public", None} or self._new_roles(connection))
        finally:
            engine.dispose()
        if leftovers:  # a new database is the one sure way to empty it (and CREATE DATABASE is slow)
            with self.connect_admin() as connection:
                drop_database(connection, name)
                compat.exec_sql(connection, f"CREATE DATABASE {quote_name(connection, name)}")
        return had_tables

    def drop_roles(self) -> list[str]:
        """Drop the roles and users the run created; returns those that could not be dropped."""
        if not self.named_roles:
            return []
        with self.connect_admin() as connection:
            left = []
            for role in self._new_roles(connection):
                try:
                    _drop_role(connection, role)
                except sa.exc.DBAPIError as exc:
                    left.append(f"{_role_label(role)} ({describe_error(exc)})")
        return left

    def _new_roles(self, connection: sa.engine.Connection) -> list[tuple[str, str]]:
        """The roles and users on the server that the run created: named by its statements and
        not there at its start."""
        if self.roles is None or not self.named_roles:
            return []
        now = _roles(connection) or frozenset()
        return sorted(role for role in now - self.roles if role[0] in self.named_roles)

    def close(self) -> str | None:
        """Drop what this run created, or empty the given database; None, or what is left to do."""
        try:
            return self._clean_up()
        finally:
            if self.lock is not None:  # the databases are gone: nothing left to claim
                self.lock.close()
                self.lock = None
            if self.roles_lock is not None:  # the roles it created are gone
                self.roles_lock.close()
                self.roles_lock = None

    def _reclaim(self) -> list[str]:
        """Drop the scratch databases of killed runs (their lock is free); returns their names."""
        dropped = []
        with self.connect_admin() as connection:
            names = sorted(database_names(connection))
            tokens = {match[1] for match in map(_SCRATCH_NAME.match, names) if match} - {self.token}
            for token in sorted(tokens):
                if not _lock(connection, token, wait=False):
                    continue  # its run is alive
                try:
                    for name in names:
                        if name.startswith(f"migcheck_r{token}_"):
                            drop_database(connection, name)
                            dropped.append(name)
                except sa.exc.DBAPIError:
                    continue  # not ours to drop (another user's run): left to someone who may
                finally:
                    _unlock(connection, token)
        return dropped

    def _clean_up(self) -> str | None:
        if not self.created and not (self.given and self.names) and not self.named_roles:
            return None
        try:
            with self.connect_admin() as connection:
                if self.given and self.names:
                    _empty(connection, self.extensions, self.schemas)
                for name in list(self.created):
                    drop_database(connection, name)
                    self.created.remove(name)
            roles = self.drop_roles()  # after the databases, which may hold their privileges
        except (sa.exc.SQLAlchemyError, UsageError) as exc:
            what = (f"drop the database(s) {', '.join(self.created)}" if self.created
                    else f"empty the database {self.given}")
            return f"could not clean up on {self.label} ({exc}); {what} by hand"
        if roles:
            return f"could not drop what the run created on {self.label}: {', '.join(roles)}; drop it by hand"
        return None

    def connect_admin(self) -> sa.engine.Connection:
        """An autocommit connection to the given database, else to `postgres` (MySQL: to none), for
        what is done to whole databases; a server that cannot be reached is the user's error."""
        try:
            connection = self.admin.connect()
        except sa.exc.DBAPIError as exc:
            raise UsageError(f"{self.origin}: cannot connect to {self.label} as "
                             f"{self.url.username or 'the default user'}: {describe_error(exc)}") from None
        if self.backend != "postgresql":
            compat.exec_sql(connection, "SET SESSION lock_wait_timeout = 30")
        return connection

    def _name_for(self, bind_key: str | None) -> str:
        bind = "default" if bind_key is None else re.sub(r"[^a-z0-9_]", "_", bind_key.lower())
        base = f"migcheck_r{self.token}_{bind}"[:MAX_NAME]
        name, number = base, 1
        while name in self.names.values():
            number += 1
            name = f"{base[:MAX_NAME - 4]}_{number}"
        return name

    def _create(self, name: str) -> str:
        with self.connect_admin() as connection:
            self.created.append(name)  # first: a Ctrl-C right after the CREATE must still drop it
            try:
                compat.exec_sql(connection, f"CREATE DATABASE {quote_name(connection, name)}")
            except sa.exc.DBAPIError as exc:
                self.created.remove(name)
                raise UsageError(f"{self.origin}: cannot create the scratch database {name!r} on "
                                 f"{self.label}: {describe_error(exc)}. {self._grant_advice()}") from None
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


# A scratch database's name: its run's token, which names the run's lock.
_SCRATCH_NAME = re.compile(r"migcheck_r([0-9a-f]{8})_")
_PG_LOCK_CLASS = 0x6D63  # PostgreSQL advisory locks are two int4 keys: this one is migcheck's
_PG_ROLES_LOCK = 0x6D64  # the class of the roles lock, apart from every run's


def _lock_keys(connection: sa.engine.Connection, token: str) -> dict[str, Any]:
    if connection.dialect.name == "postgresql":
        number = int(token, 16)
        return {"class": _PG_LOCK_CLASS, "object": number - (1 << 32) if number >= 1 << 31 else number}
    return {"name": f"migcheck_r{token}"}


def _lock(connection: sa.engine.Connection, token: str, wait: bool) -> bool:
    """Take a run's lock on the server, for the session; False if another session holds it."""
    if connection.dialect.name == "postgresql":
        function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        statement = f"SELECT {function}(:class, :object)"
    else:
        statement = f"SELECT GET_LOCK(:name, {30 if wait else 0})"
    result = connection.execute(sa.text(statement), _lock_keys(connection, token)).scalar()
    return result is None or bool(result)  # pg_advisory_lock returns void


def _unlock(connection: sa.engine.Connection, token: str) -> None:
    statement = ("SELECT pg_advisory_unlock(:class, :object)" if connection.dialect.name == "postgresql"
                 else "SELECT RELEASE_LOCK(:name)")
    connection.execute(sa.text(statement), _lock_keys(connection, token))


def _bind_label(key: str | None) -> str:
    return "default" if key is None else repr(key)


def describe_error(exc: sa.exc.DBAPIError) -> str:
    return " ".join(str(exc.orig).split()) if exc.orig is not None else str(exc)


def quote_name(connection: sa.engine.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(name)


def database_names(connection: sa.engine.Connection) -> set[str]:
    """Every database on the server."""
    query = "SELECT datname FROM pg_database" if connection.dialect.name == "postgresql" else "SHOW DATABASES"
    return {str(name) for (name,) in compat.exec_sql(connection, query)}


def drop_database(connection: sa.engine.Connection, name: str) -> None:
    quoted = quote_name(connection, name)
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


# CREATE ROLE / USER / GROUP (PostgreSQL), CREATE USER / ROLE (MySQL, MariaDB): the first name,
# also inside a DO block or a procedure's body.
_CREATES_ROLE = re.compile(
    r"\bCREATE\s+(?:ROLE|USER|GROUP)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>\"(?:[^\"]|\"\")+\"|'(?:[^']|'')+'|`[^`]+`|\w+)", re.IGNORECASE)


def _roles(connection: sa.engine.Connection) -> frozenset[tuple[str, str]] | None:
    """The server's roles (PostgreSQL) or users and roles (MySQL: name and host); None when the
    user may not read them (then the run drops none)."""
    if connection.dialect.name == "postgresql":
        rows = compat.exec_sql(connection, "SELECT rolname, '' FROM pg_roles")
    else:
        try:
            rows = compat.exec_sql(connection, "SELECT User, Host FROM mysql.user")
        except sa.exc.DBAPIError:
            return None
    return frozenset((str(name), str(host)) for name, host in rows)


def _drop_role(connection: sa.engine.Connection, role: tuple[str, str]) -> None:
    name, host = role
    if connection.dialect.name == "postgresql":
        quoted = quote_name(connection, name)
        # What it owns and its privileges in this database and on shared objects (the scratch
        # databases, dropped already, held the rest).
        compat.exec_sql(connection, f"DROP OWNED BY {quoted}")
        compat.exec_sql(connection, f"DROP ROLE IF EXISTS {quoted}")
        return
    if host == "":  # MariaDB keeps roles in mysql.user with an empty host; DROP USER refuses them
        compat.exec_sql(connection, "DROP ROLE %s", (name,))
    else:
        compat.exec_sql(connection, "DROP USER IF EXISTS %s@%s", (name, host))


def _role_label(role: tuple[str, str]) -> str:
    return f"role {role[0]}" if not role[1] else f"user '{role[0]}'@'{role[1]}'"


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


# Every object in a user schema of a PostgreSQL database that no extension brought (extensions are
# part of the environment, like the server), with the statement that drops it: kind, schema, name,
# drop. Not listed: a table's row type and array types (they go with what they belong to).
_PG_CONTENTS = """
SELECT lower(found.kind), n.nspname, found.name,
       'DROP ' || found.kind || ' IF EXISTS '
       || coalesce(found.signature, quote_ident(n.nspname) || '.' || quote_ident(found.name))
       || ' CASCADE'
  FROM (
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                          WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                          WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END AS kind,
           c.relnamespace AS namespace, c.relname AS name, NULL AS signature,
           CAST('pg_catalog.pg_class' AS regclass) AS catalog, c.oid
      FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.typnamespace, t.typname, NULL,
           CAST('pg_catalog.pg_type' AS regclass), t.oid
      FROM pg_catalog.pg_type t WHERE t.typrelid = 0 AND t.typcategory <> 'A' AND t.typtype <> 'm'
    UNION ALL
    SELECT {routine_kind}, p.pronamespace, p.proname, CAST(CAST(p.oid AS regprocedure) AS text),
           CAST('pg_catalog.pg_proc' AS regclass), p.oid
      FROM pg_catalog.pg_proc p
    UNION ALL
    SELECT 'OPERATOR', o.oprnamespace, o.oprname, CAST(CAST(o.oid AS regoperator) AS text),
           CAST('pg_catalog.pg_operator' AS regclass), o.oid
      FROM pg_catalog.pg_operator o
    UNION ALL
    SELECT 'COLLATION', l.collnamespace, l.collname, NULL,
           CAST('pg_catalog.pg_collation' AS regclass), l.oid
      FROM pg_catalog.pg_collation l
    UNION ALL
    SELECT 'TEXT SEARCH CONFIGURATION', s.cfgnamespace, s.cfgname, NULL,
           CAST('pg_catalog.pg_ts_config' AS regclass), s.oid
      FROM pg_catalog.pg_ts_config s
  ) AS found
  JOIN pg_catalog.pg_namespace n ON n.oid = found.namespace
 WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = found.catalog AND d.objid = found.oid AND d.deptype = 'e')
"""
# pg_proc.prokind is PostgreSQL 11+; before, only aggregates need their own DROP.
_PG_ROUTINE_KIND = {
    True: "CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END",
    False: "CASE WHEN p.proisagg THEN 'AGGREGATE' ELSE 'FUNCTION' END",
}

# The same for the MySQL/MariaDB database of the connection (MariaDB lists sequences as tables);
# what the emptying drops besides tables and views: kind, name, drop.
_MYSQL_CONTENTS = (
    "SELECT CASE TABLE_TYPE WHEN 'VIEW' THEN 'view' WHEN 'SEQUENCE' THEN 'sequence' ELSE 'table' END,"
    " TABLE_NAME, NULL FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    "SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME, CONCAT('DROP ', ROUTINE_TYPE, ' IF EXISTS `',"
    " REPLACE(ROUTINE_NAME, '`', '``'), '`') FROM information_schema.ROUTINES"
    " WHERE ROUTINE_SCHEMA = DATABASE()",
    "SELECT 'event', EVENT_NAME, CONCAT('DROP EVENT IF EXISTS `', REPLACE(EVENT_NAME, '`', '``'), '`')"
    " FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()",
    "SELECT 'trigger', TRIGGER_NAME, NULL FROM information_schema.TRIGGERS"  # they go with the tables
    " WHERE TRIGGER_SCHEMA = DATABASE()",
)


class Content(NamedTuple):
    label: str  # "kind name", schema-qualified outside PostgreSQL's public schema
    drop: str | None  # the statement that drops it, if the emptying needs one of its own


def _contents(connection: sa.engine.Connection) -> list[Content]:
    """Everything a database holds, sorted by label; empty for an empty database."""
    if connection.dialect.name == "postgresql":
        version = connection.dialect.server_version_info or (0,)
        query = _PG_CONTENTS.format(routine_kind=_PG_ROUTINE_KIND[version >= (11,)])
        found = [Content(f"{kind} {name if schema == 'public' else f'{schema}.{name}'}", drop)
                 for kind, schema, name, drop in connection.execute(sa.text(query))]
    else:
        found = [Content(f"{kind} {name}", drop) for query in _MYSQL_CONTENTS
                 for kind, name, drop in connection.execute(sa.text(query))]
    return sorted(found)


def _extensions(connection: sa.engine.Connection) -> frozenset[str]:
    if connection.dialect.name != "postgresql":
        return frozenset()
    return frozenset(name for (name,) in connection.execute(sa.text(
        "SELECT extname FROM pg_catalog.pg_extension")))


def _types_or_sequences(connection: sa.engine.Connection) -> bool:
    """PostgreSQL objects that outlive a downgrade which drops the tables but forgets the types."""
    if connection.dialect.name != "postgresql":
        return False
    inspector = sa.inspect(connection)
    return any(inspector.get_enums(schema) or compat.sequence_names(connection, schema)  # type: ignore[attr-defined]
               for schema in _schemas(connection))


def _empty(connection: sa.engine.Connection, extensions: frozenset[str],
           schemas: frozenset[str | None]) -> None:
    """Remove everything from a given database that was empty: what the run made, also functions,
    types, routines, schemas and extensions (but not the `extensions` and `schemas` it held)."""
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        for name in sorted(_extensions(connection) - extensions):
            connection.execute(sa.text(f"DROP EXTENSION IF EXISTS {quote_name(connection, name)} CASCADE"))
        for schema in sorted(str(s) for s in set(_schemas(connection)) - schemas):
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote_name(connection, schema)} CASCADE"))
    else:
        inspector = sa.inspect(connection)
        compat.exec_sql(connection, "SET FOREIGN_KEY_CHECKS = 0")
        for view in inspector.get_view_names():
            compat.exec_sql(connection, f"DROP VIEW IF EXISTS {quote_name(connection, view)}")
        for table in inspector.get_table_names():
            compat.exec_sql(connection, f"DROP TABLE IF EXISTS {quote_name(connection, table)}")
    for content in _contents(connection):  # IF EXISTS: a CASCADE may have dropped it already
        if content.drop:
            connection.execute(sa.text(content.drop.replace(":", "\\:")))  # not a bind parameter
    if not postgres:
        compat.exec_sql(connection, "SET FOREIGN_KEY_CHECKS = 1")
