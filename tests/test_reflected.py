"""The reflection kept between runs (state/reflected.py): used only for the schema it was made on,
and giving what SQLAlchemy's own reflection gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Project

from migcheck import compat
from migcheck.state import reflected

# Types, keys, indexes (partial, unique, on an expression), defaults, a column declared without a
# type and one with a type SQLAlchemy does not know: what SQLite reflection meets in real schemas.
SCHEMA = [
    """CREATE TABLE "user" (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL UNIQUE,
       score NUMERIC(10, 2) DEFAULT 0, born DATE, seen DATETIME DEFAULT CURRENT_TIMESTAMP,
       active BOOLEAN DEFAULT 1 NOT NULL CHECK (active IN (0, 1)), data JSON, blob BLOB,
       odd GEOMETRY, untyped, ratio REAL, flag TINYINT)""",
    """CREATE TABLE post (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL,
       title VARCHAR(200), body TEXT, CONSTRAINT fk_post_user FOREIGN KEY (user_id)
       REFERENCES "user" (id) ON DELETE CASCADE, CONSTRAINT uq_post_title UNIQUE (user_id, title))""",
    "CREATE INDEX ix_post_title ON post (title) WHERE title IS NOT NULL",
    "CREATE UNIQUE INDEX ix_user_name_score ON \"user\" (name, score DESC)",
    "CREATE INDEX ix_post_lower ON post (lower(title))",
    "CREATE VIEW recent AS SELECT id, title FROM post",
]


kept_on_this_stack = pytest.mark.skipif(
    not compat.REFLECTION_RESULTS_STABLE, reason="SQLAlchemy < 2: no reflection is kept (see the test below)")


def _database(path: Path, statements: list[str]) -> sa.engine.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        for statement in statements:
            compat.exec_sql(connection, statement)
    return engine


def _reflect(connection: sa.engine.Connection, info_cache: dict[Any, Any] | None) -> str:
    """Everything the inspector tells of every table, and the tables reflected through it, as text."""
    inspector = sa.inspect(connection)
    if info_cache is not None:
        inspector.info_cache = info_cache
    told: list[str] = []  # as text at once: reflecting a table edits what the inspector told before
    for table in inspector.get_table_names():
        for aspect in (*compat.REFLECTED_ASPECTS, "check_constraints"):
            told.append(_text((table, aspect, getattr(inspector, f"get_{aspect}")(table))))
        reflected_table = sa.Table(table, sa.MetaData())
        # reflect_table from SQLAlchemy 1.4 (reflecttable before); the tables its foreign keys refer
        # to would be reflected through inspectors of their own
        reflect = getattr(inspector, "reflect_table", None) or inspector.reflecttable
        reflect(reflected_table, None, resolve_fks=False)
        told.append(_text((table, [(c.name, c.type, c.nullable, c.primary_key, c.server_default and
                                    c.server_default.arg) for c in reflected_table.columns])))
        told.append(_text((table, sorted((i.name, i.unique, [str(e) for e in i.expressions])
                                         for i in reflected_table.indexes))))
    return "\n".join(told)


def _text(value: Any) -> str:
    """`value` as text that two equal reflections give alike (a TextClause's repr is its address)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_text(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, sa.sql.elements.TextClause):
        return f"text({value.text!r})"
    return repr(value)


def _counting(engine: sa.engine.Engine) -> list[str]:
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


@kept_on_this_stack
def test_a_kept_reflection_gives_what_reflection_gives_without_a_query(tmp_path: Path) -> None:
    engine = _database(tmp_path / "db.sqlite", SCHEMA)
    kept = tmp_path / "kept"
    with engine.connect() as connection:
        fresh = _reflect(connection, None)
        with reflected.reusing(connection, kept) as info_cache:
            assert info_cache is not None and not info_cache  # nothing kept yet
            assert _reflect(connection, info_cache) == fresh
    [stored] = kept.glob("*.json")
    statements = _counting(engine)
    with engine.connect() as connection, reflected.reusing(connection, kept) as info_cache:
        assert info_cache
        del statements[:]
        assert _reflect(connection, info_cache) == fresh
        # Only the columns of `user` are reflected again: its untyped column has no type to keep.
        assert {s for s in statements if "PRAGMA" in s} == {'PRAGMA main.table_xinfo("user")'}
    assert list(kept.glob("*.json")) == [stored]


@kept_on_this_stack
def test_a_kept_reflection_serves_only_its_own_schema(tmp_path: Path) -> None:
    engine = _database(tmp_path / "db.sqlite", SCHEMA)
    kept = tmp_path / "kept"
    with engine.connect() as connection, reflected.reusing(connection, kept) as info_cache:
        _reflect(connection, info_cache)
    for change in ("ALTER TABLE post ADD COLUMN extra INTEGER", "DROP INDEX ix_post_lower",
                   "CREATE INDEX ix_post_lower ON post (lower(body))"):
        with engine.begin() as connection:
            compat.exec_sql(connection, change)
        with engine.connect() as connection:
            fresh = _reflect(connection, None)
            with reflected.reusing(connection, kept) as info_cache:
                assert info_cache == {}, change
                assert _reflect(connection, info_cache) == fresh
    assert len(list(kept.glob("*.json"))) == 4


@kept_on_this_stack
def test_a_damaged_kept_reflection_is_not_used(tmp_path: Path) -> None:
    engine = _database(tmp_path / "db.sqlite", SCHEMA)
    kept = tmp_path / "kept"
    with engine.connect() as connection, reflected.reusing(connection, kept) as info_cache:
        fresh = _reflect(connection, info_cache)
    [stored] = kept.glob("*.json")
    envelope = json.loads(stored.read_text())
    stored.write_text(envelope["content"].replace("VARCHAR(64)", "VARCHAR(65)"))  # hash no longer matches
    with engine.connect() as connection, reflected.reusing(connection, kept) as info_cache:
        assert info_cache == {}
        assert _reflect(connection, info_cache) == fresh


@kept_on_this_stack
def test_attached_databases_are_not_kept(tmp_path: Path) -> None:
    engine = _database(tmp_path / "db.sqlite", SCHEMA)
    with engine.connect() as connection:
        compat.exec_sql(connection, f"ATTACH DATABASE '{tmp_path / 'other.sqlite'}' AS other")
        with reflected.reusing(connection, tmp_path / "kept") as info_cache:
            assert info_cache is None


@pytest.mark.skipif(compat.REFLECTION_RESULTS_STABLE, reason="SQLAlchemy 2 keeps reflections (tests above)")
def test_no_reflection_is_kept_before_sqlalchemy_2(tmp_path: Path) -> None:
    # SQLite's get_pk_constraint sorts the columns that get_columns cached: what the inspector
    # returns depends on what it was asked before, which a kept copy would not reproduce.
    engine = _database(tmp_path / "db.sqlite", SCHEMA)
    with engine.connect() as connection, reflected.reusing(connection, tmp_path / "kept") as info_cache:
        assert info_cache is None
        inspector = sa.inspect(connection)
        before = [c["name"] for c in inspector.get_columns("post")]
        inspector.get_pk_constraint("post")
        assert [c["name"] for c in inspector.get_columns("post")] != before


def test_a_warm_run_reports_the_drift_a_cold_run_reports(project: Project) -> None:
    assert project.run().code == 0
    kept = {p: p.read_bytes() for p in (project.path / ".migcheck-cache" / "reflected").glob("*.json")}
    assert bool(kept) == compat.REFLECTION_RESULTS_STABLE
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    project.edit("sample_app/models/user.py", "db.String(120)", "db.String(80)")
    project.edit("sample_app/models/user.py", "nullable=False, unique=True)\n    display",
                 "nullable=False)\n    display")
    warm = project.run("--format", "json")
    cold = project.run("--format", "json", "--no-cache")
    assert warm.code == cold.code == 1, warm.output
    warm_report, cold_report = json.loads(warm.out), json.loads(cold.out)
    assert (warm_report["cached"], cold_report["cached"]) == (3, 0)
    findings = warm_report["findings"]
    assert findings == cold_report["findings"]
    # the warm run found everything it reflects kept (it added nothing); the cold one keeps nothing
    assert {p: p.read_bytes() for p in kept} == kept
    assert {f["rule"] for f in findings if f["check"] == "drift"} >= {"drift-add-column", "drift-modify-type"}
