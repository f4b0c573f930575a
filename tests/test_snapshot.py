"""The round trip's schema snapshot is what SQLAlchemy's reflection says, whichever way it reflects
(all tables at once with `get_multi_*`, SQLAlchemy 2.0 on, or table by table before), on every
database; on PostgreSQL, where the snapshot is read from the catalog in one query, but for the
spelling of types (the server's own)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ROOT, Project
from servers import Server
from sqlalchemy.pool import NullPool

from migcheck import compat
from migcheck.state import snapshot


def upgraded(project: Project, app: str, url: str) -> sa.engine.Engine:
    """An engine on `url`, upgraded to head by the project's own `flask db upgrade`."""
    done = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=project.path,
                          env=project.env({"DATABASE_URL": url, "FLASK_APP": app}),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return sa.create_engine(url, poolclass=NullPool)


def table_by_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reflect as SQLAlchemy 1.3 and 1.4 do (on them, both ways are this one)."""
    monkeypatch.delattr(sa.engine.reflection.Inspector, "get_multi_columns", raising=False)


def both_ways(engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    with engine.connect() as connection:
        at_once = snapshot.take(connection)
        with monkeypatch.context() as patched:
            table_by_table(patched)
            one_by_one = snapshot.take(connection)
    engine.dispose()
    return at_once, one_by_one


def server_database(server: Server, name: str) -> str:
    url = compat.make_url(server.with_(database=name))
    if url.drivername == "postgresql":
        url = compat.url_with(url, drivername=f"postgresql+{compat.postgresql_driver()}")
    return compat.render_url(url, hide_password=False)


def copy_fixture(name: str, tmp_path: Path) -> Project:
    shutil.copytree(ROOT / "tests" / "fixtures" / name, tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    return Project(tmp_path)


def as_reflected(shape: dict[str, Any]) -> dict[str, Any]:
    """`shape` without column types, nor indexes on expressions: SQLAlchemy 2 reflects them with no
    column (`None`), 1.3 and 1.4 leave them out; the catalog gives their expression."""
    def on_expression(index: dict[str, Any]) -> bool:
        return any(column == "None" or "(" in column for column in index["columns"])

    return {name: {**table, "columns": {column: {k: v for k, v in info.items() if k != "type"}
                                        for column, info in table["columns"].items()},
                   "indexes": {index: info for index, info in table["indexes"].items()
                               if not on_expression(info)}}
            for name, table in shape.items()}


def test_postgres_snapshot_is_what_reflection_says(postgres: Server, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Enums, JSONB, ARRAY, partial and expression indexes, an identity column, defaults, a view."""
    project = copy_fixture("pg_tracker", tmp_path)
    with postgres.database() as name:
        engine = upgraded(project, "tracker:create_app()", server_database(postgres, name))
        with engine.connect() as connection:
            taken = snapshot.take(connection)
            at_once = snapshot._reflect(connection, "alembic_version")
            with monkeypatch.context() as patched:
                table_by_table(patched)
                one_by_one = snapshot._reflect(connection, "alembic_version")
        engine.dispose()
    assert len(taken.shape) >= 3 and any(shape["foreign_keys"] for shape in taken.shape.values())
    assert any(index["columns"] == ("lower(name::text)",) for shape in taken.shape.values()
               for index in shape["indexes"].values())  # an expression index: its expression
    assert taken.shape["ticket"]["columns"]["title"]["type"] == "character varying(300)"
    for reflected in (at_once, one_by_one):
        assert as_reflected(taken.shape) == as_reflected(reflected)


def test_mariadb_snapshot_is_the_same_either_way(mysql: Server, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Foreign keys, unsigned and enum columns, unique constraints, a view, a trigger."""
    project = copy_fixture("mariadb_shop", tmp_path)
    with mysql.database() as name:
        at_once, one_by_one = both_ways(upgraded(project, "shop:create_app()",
                                                 server_database(mysql, name) + "?charset=utf8mb4"),
                                        monkeypatch)
    assert len(at_once.shape) >= 3 and any(shape["foreign_keys"] for shape in at_once.shape.values())
    assert at_once == one_by_one


def test_sqlite_reflected_shape_is_the_same_either_way(project: Project, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite a snapshot is DDL text; the tables are reflected when two texts differ."""
    engine = upgraded(project, "sample_app:app", f"sqlite:///{tmp_path / 'head.sqlite'}")
    with engine.connect() as connection:
        taken = snapshot.take(connection)
    engine.dispose()
    tables = set(snapshot.tables(taken))
    at_once = snapshot._shape(taken, tables)
    table_by_table(monkeypatch)
    assert len(tables) >= 3 and at_once == snapshot._shape(taken, tables)


# Each change alone, then undone: the snapshot after it sees the change, the one after the undo is
# the first one again (on MySQL/MariaDB from its fingerprint), and both are what reflection says.
DROP_INDEX = "DROP INDEX ix_item_name|DROP INDEX ix_item_name ON item"  # PostgreSQL|MySQL, when they differ
CHANGES = [
    ("ALTER TABLE item ADD COLUMN note VARCHAR(20)", "ALTER TABLE item DROP COLUMN note"),
    ("ALTER TABLE item ALTER COLUMN name TYPE VARCHAR(40)|ALTER TABLE item MODIFY name VARCHAR(40)",
     "ALTER TABLE item ALTER COLUMN name TYPE VARCHAR(30)|ALTER TABLE item MODIFY name VARCHAR(30)"),
    ("ALTER TABLE item ALTER COLUMN name SET NOT NULL|ALTER TABLE item MODIFY name VARCHAR(30) NOT NULL",
     "ALTER TABLE item ALTER COLUMN name DROP NOT NULL|ALTER TABLE item MODIFY name VARCHAR(30) NULL"),
    ("ALTER TABLE item ALTER COLUMN name SET DEFAULT 'x'", "ALTER TABLE item ALTER COLUMN name DROP DEFAULT"),
    ("CREATE INDEX ix_item_name ON item (name)", DROP_INDEX),
    ("CREATE UNIQUE INDEX ix_item_name ON item (name)", DROP_INDEX),
    ("ALTER TABLE item ADD CONSTRAINT uq_item_name UNIQUE (name)",
     "ALTER TABLE item DROP CONSTRAINT uq_item_name|ALTER TABLE item DROP INDEX uq_item_name"),
    ("ALTER TABLE item ADD CONSTRAINT fk_item_owner FOREIGN KEY (owner_id) REFERENCES owner (id)",
     "ALTER TABLE item DROP CONSTRAINT fk_item_owner"
     "|ALTER TABLE item DROP FOREIGN KEY fk_item_owner, DROP INDEX fk_item_owner"),  # MySQL keeps its index
    ("ALTER TABLE item RENAME TO thing", "ALTER TABLE thing RENAME TO item"),
    ("CREATE TABLE extra (id INTEGER PRIMARY KEY)", "DROP TABLE extra"),
]


def reflected(taken: snapshot.Snapshot, connection: Any) -> bool:
    """Whether the snapshot is what reflection says now (on PostgreSQL, but for types' spelling)."""
    now = snapshot._reflect(connection, "alembic_version")
    if taken.dialect == "postgresql":
        return as_reflected(taken.shape) == as_reflected(now)
    return taken.shape == now


def test_a_snapshot_is_reflected_again_after_any_change(server: Server) -> None:
    def run(connection: Any, statement: str) -> None:
        postgres_text, _, mysql_text = statement.partition("|")
        compat.exec_sql(connection, mysql_text if server.name == "mysql" and mysql_text else postgres_text)

    with server.database() as name:
        engine = sa.create_engine(server_database(server, name), poolclass=NullPool,
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            run(connection, "CREATE TABLE owner (id INTEGER PRIMARY KEY)")
            run(connection, "CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(30), owner_id INTEGER)")
            first = snapshot.take(connection)
            for change, undo in CHANGES:
                run(connection, change)
                changed = snapshot.take(connection)
                assert changed != first and snapshot.differences(first, changed)
                assert reflected(changed, connection)
                run(connection, undo)
                assert snapshot.take(connection) == first and reflected(first, connection)
        engine.dispose()
