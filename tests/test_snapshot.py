"""The round trip's schema snapshot is the same whichever way SQLAlchemy reflects it: all tables at
once (`get_multi_*`, SQLAlchemy 2.0 on) or table by table (before), on every database."""

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


def test_postgres_snapshot_is_the_same_either_way(postgres: Server, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Enums, JSONB, ARRAY, partial and expression indexes, an identity column, defaults, a view."""
    project = copy_fixture("pg_tracker", tmp_path)
    with postgres.database() as name:
        at_once, one_by_one = both_ways(upgraded(project, "tracker:create_app()",
                                                 server_database(postgres, name)), monkeypatch)
    assert len(at_once.shape) >= 3 and any(shape["foreign_keys"] for shape in at_once.shape.values())
    assert at_once == one_by_one


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
