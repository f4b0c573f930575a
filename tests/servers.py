"""Real PostgreSQL and MariaDB servers for the tests.

Without a server the tests that need it skip, saying why; with MIGCHECK_REQUIRE_SERVERS=1 (set by
.ci/run) they fail instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

URLS = {"postgresql": os.environ.get("MIGCHECK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/"),
        "mysql": os.environ.get("MIGCHECK_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")}

# Appended to a test app: writes the databases migcheck pointed the app's engines at to
# $SCRATCH_RECORD, so a test can check that exactly those are gone, while other tests run in parallel.
RECORDER = '''

def _record_scratch_databases(app):
    import os
    from migcheck import compat

    with app.app_context(), open(os.environ["SCRATCH_RECORD"], "a") as record:
        engines = compat.app_engines(app.extensions["migrate"].db, app).values()
        record.writelines(f"{engine.url.database}\\n" for engine in engines)
'''


class Server(NamedTuple):
    name: str  # "postgresql" or "mysql"
    url: str  # what the tests pass to --db-url

    @contextmanager
    def connect(self, database: str | None = None) -> Iterator[object]:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        from migcheck import compat

        url = compat.make_url(self.url)
        if url.drivername == "postgresql":
            url = compat.url_with(url, drivername=f"postgresql+{compat.postgresql_driver()}")
        if database is None and self.name == "postgresql":
            database = "postgres"
        engine = sa.create_engine(compat.url_with(url, database=database), poolclass=NullPool,
                                  isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()

    def execute(self, *statements: str, database: str | None = None) -> list[tuple[object, ...]]:
        from migcheck import compat

        rows: list[tuple[object, ...]] = []
        with self.connect(database) as connection:
            for statement in statements:
                if self.name == "mysql":
                    statement = statement.replace("%", "%%")  # PyMySQL formats even without parameters
                result = compat.exec_sql(connection, statement)  # type: ignore[arg-type]
                rows = [tuple(row) for row in result] if result.returns_rows else []
        return rows

    def with_(self, **parts: str) -> str:
        """The server URL with another user or database, password included."""
        from migcheck import compat

        return compat.render_url(compat.url_with(compat.make_url(self.url), **parts), hide_password=False)

    def databases(self) -> set[str]:
        query = "SELECT datname FROM pg_database" if self.name == "postgresql" else "SHOW DATABASES"
        return {str(row[0]) for row in self.execute(query)}

    def quote(self, name: str) -> str:
        return f'"{name}"' if self.name == "postgresql" else f"`{name}`"

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new empty database for a test, dropped afterwards."""
        name = f"test_given_{secrets.token_hex(4)}"
        self.execute(f"CREATE DATABASE {self.quote(name)}")
        try:
            yield name
        finally:
            self.execute(f"DROP DATABASE IF EXISTS {self.quote(name)}")

    def tables(self, database: str) -> list[str]:
        query = ("SELECT tablename FROM pg_tables WHERE schemaname = 'public'" if self.name == "postgresql"
                 else "SHOW TABLES")
        return sorted(str(row[0]) for row in self.execute(query, database=database))


@functools.cache
def _unreachable(name: str) -> str | None:
    """Why the server cannot be used, or None when it can."""
    try:
        Server(name, URLS[name]).execute("SELECT 1")
    except ImportError as exc:
        return f"no driver for {name}: {exc}"
    except Exception as exc:
        return f"no {name} server at {URLS[name]}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def get_server(name: str) -> Server:
    reason = _unreachable(name)
    if reason is not None:
        if os.environ.get("MIGCHECK_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{reason} (MIGCHECK_REQUIRE_SERVERS=1: servers are required here)")
        pytest.skip(reason)
    return Server(name, URLS[name])


@pytest.fixture(params=["postgresql", "mysql"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each real server in turn."""
    return get_server(request.param)


@pytest.fixture
def postgres() -> Server:
    return get_server("postgresql")


@pytest.fixture
def mysql() -> Server:
    return get_server("mysql")


def recorded(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def cache_databases(caches: list[Path]) -> list[str]:
    """The server databases the cache entries under these cache directories name."""
    import json

    names = []
    for manifest in (m for cache in caches for m in cache.glob("*/*/manifest.json")):
        saved = json.loads(json.loads(manifest.read_text())["content"])
        names += [name for _, name in saved.get("databases") or []]
    return names


def drop_cache_databases(caches: list[Path]) -> None:
    """Drop them on each server that is up (the manifests do not say which server holds them)."""
    names = cache_databases(caches)
    if not names:
        return
    if _unreachable("postgresql") is None:
        get_server("postgresql").execute(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                                           for name in names))
    if _unreachable("mysql") is None:
        get_server("mysql").execute(*(f"DROP DATABASE IF EXISTS `{name}`" for name in names))
