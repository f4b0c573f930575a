"""The pattern suite: small Flask apps whose clean histories use what real PostgreSQL and MariaDB
projects use (tests/fixtures/pg_tracker, tests/fixtures/mariadb_shop). Each clean fixture passes every
default check with `--since base` on its server; a mutated copy fails the check it should, at the
right file:line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Project, Result
from servers import Server

PG_APP = "tracker:create_app()"
PG_INITIAL, PG_AUDIT, PG_HEAD = "3c6d0d2b1a10", "8f1e2a7c5b33", "d4b9e0f7a6c2"
# Before SQLAlchemy 2, psycopg2 reads a UUID column's rows as UUID objects, and the data check's
# generated rows put them into a column reflected as UUID(as_uuid=False) (project.owner_id ->
# account.id): migcheck's own code fails, and says env.py did.
def copy_fixture(name: str, tmp_path: Path) -> Project:
    shutil.copytree(ROOT / "tests" / "fixtures" / name, tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    return Project(tmp_path)


def check(project: Project, server: Server, app: str, *args: str) -> tuple[Result, list[dict[str, Any]]]:
    result = project.run("--db-url", server.url, "--format", "json", *args, app=app)
    assert result.code in (0, 1), result.output
    return result, json.loads(result.out)["findings"]


def found(findings: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(f["rule"], f["path"], f["line"]) for f in findings]


# --- PostgreSQL: tests/fixtures/pg_tracker -----------------------------------------------------

@pytest.fixture
def tracker(tmp_path: Path) -> Project:
    return copy_fixture("pg_tracker", tmp_path)


def test_pg_tracker_is_clean(tracker: Project, postgres: Server) -> None:
    """Enums, JSONB + GIN, ARRAY, partial and expression indexes, a sequence, an identity column,
    gen_random_uuid() / now() defaults, CREATE EXTENSION, a second schema, a trigger function,
    a view and a materialized view, and indexes built concurrently in an autocommit block."""
    result, findings = check(tracker, postgres, PG_APP, "--since", "base")
    assert result.code == 0 and findings == [], result.output


def test_pg_tracker_head_alone_is_clean(tracker: Project, postgres: Server) -> None:
    """The concurrent indexes of the head revision, on a table deployed before it: nothing to say."""
    result, findings = check(tracker, postgres, PG_APP)
    assert result.code == 0 and findings == [], result.output


def test_pg_tracker_downgrade_leaving_the_enum(tracker: Project, postgres: Server) -> None:
    path = tracker.revision_file(PG_INITIAL)
    tracker.edit(path, "    op.execute('DROP TYPE project_status')\n", "")
    _, findings = check(tracker, postgres, PG_APP, "--since", "base", "--select", "roundtrip")
    assert found(findings) == [("roundtrip-reupgrade-failed", path,
                                tracker.line_of(path, "op.create_table('project'"))]
    assert 'type "project_status" already exists' in findings[0]["message"]


def test_pg_tracker_downgrade_leaving_the_view(tracker: Project, postgres: Server) -> None:
    path = tracker.revision_file(PG_AUDIT)
    tracker.edit(path, "    op.execute('DROP VIEW open_ticket')\n", "")
    _, findings = check(tracker, postgres, PG_APP, "--since", "base", "--select", "roundtrip")
    assert found(findings) == [("roundtrip-reupgrade-failed", path,
                                tracker.line_of(path, "CREATE VIEW open_ticket") - 1)]


def test_pg_tracker_downgrade_leaving_the_trigger(tracker: Project, postgres: Server) -> None:
    path = tracker.revision_file(PG_AUDIT)
    tracker.edit(path, "    op.execute('DROP TRIGGER ticket_audit ON ticket')\n", "")
    _, findings = check(tracker, postgres, PG_APP, "--since", "base", "--select", "roundtrip")
    assert found(findings) == [("roundtrip-downgrade-failed", path,
                                tracker.line_of(path, "DROP FUNCTION audit.log_ticket_change()"))]
    assert ("cannot drop function audit.log_ticket_change() because other objects depend on it"
            in findings[0]["message"])


def test_pg_tracker_model_change_without_migration(tracker: Project, postgres: Server) -> None:
    models = "tracker/models.py"
    tracker.edit(models, "    closed_at = db.Column(db.DateTime(timezone=True))\n",
                 "    closed_at = db.Column(db.DateTime(timezone=True))\n"
                 "    watchers = db.Column(ARRAY(UUID(as_uuid=True)), nullable=False, server_default='{}')\n")
    _, findings = check(tracker, postgres, PG_APP, "--since", "base", "--select", "drift")
    assert found(findings) == [("drift-add-column", models, tracker.line_of(models, "watchers ="))]


def test_pg_tracker_not_null_column_on_a_table_with_rows(tracker: Project, postgres: Server) -> None:
    path = tracker.add_revision("e5c0ffee0001", PG_HEAD, """\
with op.batch_alter_table('ticket', schema=None) as batch_op:
    batch_op.add_column(sa.Column('reporter_id', postgresql.UUID(as_uuid=True), nullable=False))
""", downgrade="""\
with op.batch_alter_table('ticket', schema=None) as batch_op:
    batch_op.drop_column('reporter_id')
""", doc="ticket reporter")
    tracker.edit(path, "import sqlalchemy as sa\n",
                 "import sqlalchemy as sa\nfrom sqlalchemy.dialects import postgresql\n")
    tracker.edit("tracker/models.py", "    title = db.Column(db.String(300), nullable=False)\n",
                 "    title = db.Column(db.String(300), nullable=False)\n"
                 "    reporter_id = db.Column(UUID(as_uuid=True), nullable=False)\n")
    _, findings = check(tracker, postgres, PG_APP)
    assert found(findings) == [
        ("data-fails-with-rows", path, tracker.line_of(path, "with op.batch_alter_table"))]


def test_pg_tracker_index_built_while_blocking_writes(tracker: Project, postgres: Server) -> None:
    path = tracker.add_revision("e5c0ffee0002", PG_HEAD, """\
op.create_index('ix_ticket_closed_at', 'ticket', ['closed_at'], unique=False)
""", downgrade="op.drop_index('ix_ticket_closed_at', table_name='ticket')", doc="index closed tickets")
    _, findings = check(tracker, postgres, PG_APP, "--select", "safety")
    assert found(findings) == [
        ("safety-index-not-concurrent", path, tracker.line_of(path, "op.create_index")),
        # observed: the ShareLock it took, with no lock_timeout set
        ("safety-lock-timeout", path, tracker.line_of(path, "op.create_index"))]


# --- MariaDB: tests/fixtures/mariadb_shop ------------------------------------------------------

MY_APP = "shop:create_app()"
MY_CATALOG, MY_PURCHASES, MY_HEAD = "6a0d3f9e2c41", "b57e1c08d9a3", "e2f48a7b13c5"


@pytest.fixture
def shop(tmp_path: Path) -> Project:
    return copy_fixture("mariadb_shop", tmp_path)


def test_mariadb_shop_is_clean(shop: Project, mysql: Server) -> None:
    """ENUM, JSON, unsigned keys, ON UPDATE CURRENT_TIMESTAMP, FULLTEXT, a view and a trigger."""
    result, findings = check(shop, mysql, MY_APP, "--since", "base")
    assert result.code == 0, result.output
    assert [f for f in findings if f["severity"] != "info"] == [], result.output


def test_mariadb_shop_has_rows_in_every_table(shop: Project, mysql: Server) -> None:
    _, findings = check(shop, mysql, MY_APP, "--since", "base", "--select", "data")
    assert findings == []


def test_mariadb_shop_downgrade_leaving_the_view(shop: Project, mysql: Server) -> None:
    path = shop.revision_file(MY_PURCHASES)
    shop.edit(path, "    op.execute('DROP VIEW product_stock')\n", "")
    _, findings = check(shop, mysql, MY_APP, "--since", "base", "--select", "roundtrip")
    assert found(findings) == [("roundtrip-reupgrade-failed", path,
                                shop.line_of(path, "CREATE VIEW product_stock") - 1)]


def test_mariadb_shop_downgrade_leaving_the_trigger(shop: Project, mysql: Server) -> None:
    path = shop.revision_file(MY_PURCHASES)
    shop.edit(path, "    op.execute('DROP TRIGGER product_sku_upper')\n", "")
    _, findings = check(shop, mysql, MY_APP, "--since", "base", "--select", "roundtrip")
    assert found(findings) == [("roundtrip-reupgrade-failed", path,
                                shop.line_of(path, "CREATE TRIGGER product_sku_upper") - 1)]
    assert "already exists" in findings[0]["message"]


def test_mariadb_shop_enum_member_without_migration(shop: Project, mysql: Server) -> None:
    models = "shop/models.py"
    shop.edit(models, '"draft", "active", "retired"', '"draft", "active", "retired", "recalled"')
    _, findings = check(shop, mysql, MY_APP, "--since", "base", "--select", "drift")
    assert found(findings) == [("drift-modify-type", models, shop.line_of(models, "status = db.Column"))]


def test_mariadb_shop_not_null_foreign_key_on_a_table_with_rows(shop: Project, mysql: Server) -> None:
    """MariaDB fills the new column with 0, which no category has: the foreign key refuses it."""
    path = shop.add_revision("e5c0ffee0003", MY_HEAD, """\
with op.batch_alter_table('category', schema=None) as batch_op:
    batch_op.add_column(sa.Column('parent_id', mysql.INTEGER(unsigned=True), nullable=False))
    batch_op.create_foreign_key('fk_category_parent', 'category', ['parent_id'], ['id'])
""", downgrade="""\
with op.batch_alter_table('category', schema=None) as batch_op:
    batch_op.drop_constraint('fk_category_parent', type_='foreignkey')
    batch_op.drop_column('parent_id')
""", doc="category parent")
    shop.edit(path, "import sqlalchemy as sa\n",
              "import sqlalchemy as sa\nfrom sqlalchemy.dialects import mysql\n")
    name = "    name = db.Column(db.String(80), nullable=False, unique=True)\n"
    shop.edit("shop/models.py", name, name + '    parent_id = db.Column(INTEGER(unsigned=True), '
                                             'db.ForeignKey("category.id"), nullable=False)\n')
    _, findings = check(shop, mysql, MY_APP, "--skip", "safety")
    # (the infos: product and purchase stay empty, as in test_mariadb_shop_has_rows_in_every_table)
    assert found([f for f in findings if f["severity"] != "info"]) == [
        ("data-fails-with-rows", path, shop.line_of(path, "with op.batch_alter_table"))]


def test_mariadb_shop_not_null_column_filled_silently(shop: Project, mysql: Server) -> None:
    path = shop.add_revision("e5c0ffee0004", MY_HEAD, """\
with op.batch_alter_table('product', schema=None) as batch_op:
    batch_op.add_column(sa.Column('tax_rate', sa.Numeric(precision=4, scale=2), nullable=False))
""", downgrade="""\
with op.batch_alter_table('product', schema=None) as batch_op:
    batch_op.drop_column('tax_rate')
""", doc="product tax rate")
    _, findings = check(shop, mysql, MY_APP, "--select", "safety")
    assert found(findings) == [
        ("safety-add-not-null-column", path, shop.line_of(path, "batch_op.add_column")),
        # asked on a copy of `product`, the server refuses to add a column online: its FULLTEXT index
        ("safety-not-online", path, shop.line_of(path, "batch_op.add_column"))]
    assert "fill the existing rows with the type's implicit default" in findings[0]["message"]
    assert "Fulltext index creation requires a lock" in findings[1]["message"]
