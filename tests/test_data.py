"""Rows in the tables: the round trip gives rows back, and undeployed revisions meet populated tables.

The temp copies of sample_app are not in a git repository, so the data check's scope is the head
revision: a revision written here on top of the history is the one not yet deployed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Project
from servers import Server

BIO = "428a6cc61e6a"  # adds user.bio and post.view_count
COMMENTS = "e9e549eb0d5f"  # the head: creates the comment table
NEW = "d47a00000001"



def add_revision(project: Project, up: str, down: str, doc: str = "new revision", rev: str = NEW,
                 parent: str = COMMENTS) -> str:
    return project.add_revision(rev, parent, up, down, doc)


AGE_UP = """    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('age', sa.Integer(), nullable=False))"""
AGE_DOWN = """    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('age')"""


def add_age_to_model(project: Project) -> None:
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer, nullable=False)\n")


def test_clean_history_passes_with_rows_in_every_revision(project: Project) -> None:
    # --since base: every revision is upgraded, downgraded and upgraded again on populated tables
    result = project.run("--since", "base", "--no-cache")
    assert result.code == 0, result.output
    assert "no problems" in result.out and "info" not in result.out
    assert "data" in result.out.splitlines()[-1]


def test_not_null_column_without_default_fails_with_rows(project: Project) -> None:
    path = add_revision(project, AGE_UP, AGE_DOWN, "add user.age")
    add_age_to_model(project)
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of(path, "with op.batch_alter_table")
    assert (f"{path}:{line}: data: upgrade of `{NEW}` fails when `user` has rows (it passes on empty "
            "tables): ") in result.out
    assert "server_default" in result.out and "backfill" in result.out
    # not also an upgrade or round-trip failure, nor the safety check's prediction of it
    assert "1 error" in result.out and "safety" not in result.out.splitlines()[0]
    # without the data check, the safety check predicts it; the revision itself passes on empty tables
    predicted = project.run("--skip", "data")
    assert predicted.code == 1 and "safety: adds NOT NULL column `user.age`" in predicted.out
    assert project.run("--skip", "data,safety").code == 0


def test_not_null_column_on_a_table_created_in_the_revision_is_fine(project: Project) -> None:
    add_revision(project, """    op.create_table('badge', sa.Column('id', sa.Integer(), primary_key=True))
    with op.batch_alter_table('badge', schema=None) as batch_op:
        batch_op.add_column(sa.Column('level', sa.Integer(), nullable=False))""",
                 "    op.drop_table('badge')", "badges")
    result = project.run("--skip", "drift")
    assert result.code == 0, result.output


def test_not_null_column_with_server_default_is_fine(project: Project) -> None:
    add_revision(project, AGE_UP.replace("nullable=False", "server_default='0', nullable=False"),
                 AGE_DOWN, "add user.age")
    result = project.run("--skip", "drift")
    assert result.code == 0, result.output


def test_unique_index_on_an_existing_column_passes(project: Project) -> None:
    # generated values never repeat by accident
    add_revision(project, "    op.create_index('ix_user_display_name', 'user', ['display_name'], "
                          "unique=True)\n"
                          "    op.create_index('ix_post_title', 'post', ['title'], unique=True)",
                 "    op.drop_index('ix_post_title', table_name='post')\n"
                 "    op.drop_index('ix_user_display_name', table_name='user')", "unique indexes")
    result = project.run("--skip", "drift")
    assert result.code == 0, result.output


def test_setting_not_null_needs_a_backfill(project: Project) -> None:
    # the last generated row has NULL where NULL is allowed, as production rows do
    set_not_null = """    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('display_name', existing_type=sa.String(length=120), nullable=False)"""
    back = """    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('display_name', existing_type=sa.String(length=120), nullable=True)"""
    path = add_revision(project, set_not_null, back, "display_name required")
    result = project.run("--skip", "drift")
    assert result.code == 1, result.output
    assert f"data: upgrade of `{NEW}` fails when `user` has rows (it passes on empty tables)" in result.out
    assert "NOT NULL constraint failed" in result.out
    # with the backfill first it passes; the downgrade keeps the backfilled values: a warning
    project.write(path, project.read(path).replace(
        "def upgrade():\n", "def upgrade():\n    op.execute(\"UPDATE user SET display_name = username "
                            "WHERE display_name IS NULL\")\n"))
    result = project.run("--skip", "drift")
    assert result.code == 0, result.output
    assert (f"roundtrip: warning: downgrade of `{NEW}` does not restore 1 of the 3 rows of `user`: their "
            "values differ from before the upgrade") in result.out


def test_data_migration_whose_downgrade_forgets_a_row(project: Project) -> None:
    # The real-project case, in an old revision (the round trip checks rows in every revision): three
    # rows inserted, two deleted by the downgrade; the re-upgrade would fail on tag.name's UNIQUE.
    path = project.revision_file(BIO)
    project.edit(path, "def upgrade():\n", "def upgrade():\n    op.execute(\"INSERT INTO tag (name) "
                 "VALUES ('news'), ('howto'), ('release')\")\n")
    project.edit(path, "def downgrade():\n", "def downgrade():\n    op.execute(\"DELETE FROM tag WHERE "
                 "name IN ('news', 'howto')\")\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'def downgrade')}: roundtrip: downgrade of `{BIO}` leaves "
            "1 row behind in `tag` (it had 0 before the upgrade)\n"
            in result.out)
    assert "UNIQUE constraint failed" not in result.out  # said before the re-upgrade trips over it


def test_a_big_table_is_compared_by_its_row_count(project: Project) -> None:
    # 1500 rows (over contents.VALUES_UP_TO): counted, not hashed, in every later round trip
    path = project.revision_file(BIO)
    project.edit(path, "def upgrade():\n", "def upgrade():\n    op.execute(\"WITH RECURSIVE n(i) AS "
                 "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) INSERT INTO tag (name) "
                 "SELECT 'tag' || i FROM n\")\n")
    project.edit(path, "def downgrade():\n", "def downgrade():\n    op.execute(\"DELETE FROM tag WHERE "
                 "name <> 'tag1500'\")\n")
    result = project.run("--skip", "drift")
    assert result.code == 1, result.output
    assert f"downgrade of `{BIO}` leaves 1 row behind in `tag` (it had 0 before the upgrade)" in result.out
    assert "1 error" in result.out  # the head's round trip, with 1500 rows in tag, is clean


def test_downgrade_that_deletes_all_it_inserted_passes(project: Project) -> None:
    path = project.revision_file(BIO)
    project.edit(path, "def upgrade():\n", "def upgrade():\n    op.execute(\"INSERT INTO tag (name) "
                 "VALUES ('news'), ('howto')\")\n")
    project.edit(path, "def downgrade():\n", "def downgrade():\n    op.execute(\"DELETE FROM tag WHERE "
                 "name IN ('news', 'howto')\")\n")
    result = project.run("--since", "base")
    assert result.code == 0, result.output


def test_downgrade_that_recreates_a_table_loses_its_rows(project: Project) -> None:
    path = add_revision(project, "    op.add_column('tag', sa.Column('color', sa.String(length=20)))", """\
    op.drop_table('tag')
    op.create_table('tag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag')),
    sa.UniqueConstraint('name', name=op.f('uq_tag_name'))
    )""", "add tag.color")
    result = project.run("--skip", "drift")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'def downgrade')}: roundtrip: downgrade of `{NEW}` loses 3 "
            "of the 3 rows of `tag`") in result.out


def test_downgrade_that_cannot_restore_a_not_null_column_fails_with_rows(project: Project) -> None:
    # the upgrade drops a NOT NULL column; putting it back without a default fails once rows exist
    path = add_revision(project, """    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.drop_column('name')""", """    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=50), nullable=False))""", "drop tag.name")
    result = project.run("--skip", "drift")
    assert result.code == 1, result.output
    assert f"{path}:" in result.out
    assert f"data: downgrade of `{NEW}` fails when `tag` has rows (it passes on empty tables)" in result.out


def test_check_constraint_table_stays_empty_with_an_info(project: Project) -> None:
    add_revision(project, """    op.create_table('rating',
    sa.Column('id', sa.Integer(), primary_key=True),
    sa.Column('stars', sa.Integer(), nullable=False),
    sa.CheckConstraint('stars > 100', name='ck_rating_stars'))""", "    op.drop_table('rating')",
                 "ratings", rev="d47a00000001")
    add_revision(project, "    op.add_column('rating', sa.Column('note', sa.Text()))",
                 "    with op.batch_alter_table('rating') as batch_op:\n        batch_op.drop_column('note')",
                 "rating notes", rev="d47a00000002", parent="d47a00000001")
    result = project.run("--skip", "drift", "--since", COMMENTS)
    assert result.code == 0, result.output
    assert ("data: info: table `rating` stays empty for the data check: its rows cannot be generated: "
            "the database refused the generated rows (CHECK constraint failed") in result.out


def test_enum_json_and_self_reference_are_populated(project: Project) -> None:
    # a unique enum column caps the rows at its members; a NOT NULL self-reference cannot be filled
    add_revision(project, """    op.create_table('node',
    sa.Column('id', sa.Integer(), primary_key=True),
    sa.Column('parent_id', sa.Integer(), sa.ForeignKey('node.id'), nullable=True),
    sa.Column('kind', sa.Enum('leaf', 'branch', name='node_kind'), nullable=False, unique=True),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('weight', sa.Numeric(4, 2), nullable=False),
    sa.Column('seen', sa.Date(), nullable=False))
    op.create_table('loop',
    sa.Column('id', sa.Integer(), primary_key=True),
    sa.Column('self_id', sa.Integer(), sa.ForeignKey('loop.id'), nullable=False))
    op.create_table('ping',
    sa.Column('id', sa.Integer(), primary_key=True),
    sa.Column('pong_id', sa.Integer(), sa.ForeignKey('pong.id'), nullable=True))
    op.create_table('pong',
    sa.Column('id', sa.Integer(), primary_key=True),
    sa.Column('ping_id', sa.Integer(), sa.ForeignKey('ping.id'), nullable=False))""",
                 "    op.drop_table('pong')\n    op.drop_table('ping')\n    op.drop_table('loop')\n"
                 "    op.drop_table('node')", "nodes", rev="d47a00000001")
    # the next revision makes every column of node NOT NULL-checked against stored rows
    add_revision(project, """    with op.batch_alter_table('node', schema=None) as batch_op:
        batch_op.add_column(sa.Column('depth', sa.Integer(), nullable=False))""", """\
    with op.batch_alter_table('node', schema=None) as batch_op:
        batch_op.drop_column('depth')""", "node depth", rev="d47a00000002", parent="d47a00000001")
    # a cycle: ping's nullable reference is NULL, pong refers to ping's rows
    add_revision(project, """    with op.batch_alter_table('pong', schema=None) as batch_op:
        batch_op.add_column(sa.Column('score', sa.Integer(), nullable=False))""", """\
    with op.batch_alter_table('pong', schema=None) as batch_op:
        batch_op.drop_column('score')""", "pong score", rev="d47a00000003", parent="d47a00000002")
    result = project.run("--skip", "drift", "--since", COMMENTS)
    assert result.code == 1, result.output
    assert "data: upgrade of `d47a00000002` fails when `node` has rows" in result.out
    assert "data: upgrade of `d47a00000003` fails when `pong` has rows" in result.out
    assert "`ping`" not in result.out and "2 errors" in result.out
    assert ("table `loop` stays empty for the data check: its rows cannot be generated: its NOT NULL "
            "foreign key (self_id) refers to itself") in result.out


def test_data_check_alone_round_trips_only_its_revisions(project: Project) -> None:
    project.replace_downgrade(BIO, "    pass\n")  # an old revision's round-trip problem: not data's
    path = add_revision(project, "    op.add_column('tag', sa.Column('color', sa.String(length=20)))",
                        "    op.drop_table('tag')\n    op.create_table('tag', sa.Column('id', sa.Integer(), "
                        "primary_key=True), sa.Column('name', sa.String(length=50), nullable=False), "
                        "sa.UniqueConstraint('name', name='uq_tag_name'))", "add tag.color")
    add_revision(project, AGE_UP, AGE_DOWN, "add user.age", rev="d47a00000002", parent=NEW)
    result = project.run("--select", "data", "--since", COMMENTS)
    assert result.code == 1, result.output
    line = project.line_of(path, "def downgrade")
    assert f"{path}:{line}: roundtrip: downgrade of `{NEW}` loses" in result.out
    assert "data: upgrade of `d47a00000002` fails when `user` has rows" in result.out
    assert BIO not in result.out and "2 errors" in result.out
    assert result.out.splitlines()[-1].endswith("checks: data)")


def test_skip_data_and_cache_entries_record_how_they_were_made(project: Project) -> None:
    add_revision(project, AGE_UP, AGE_DOWN, "add user.age")
    add_age_to_model(project)
    # (without the safety check, which warns about the revision whether or not the cache serves)
    assert project.run("--skip", "data,safety").code == 0
    # the entry was made without rows: it cannot stand in for the data check of the new revision
    with_data = project.run("--skip", "safety")
    assert with_data.code == 1 and "from cache" not in with_data.out, with_data.output
    # an entry made with the data check serves the next run, with its finding
    again = project.run("--skip", "safety")
    assert again.code == 1 and "4 revisions (4 from cache)" in again.out, again.output
    assert f"data: upgrade of `{NEW}` fails when `user` has rows" in again.out
    # its database holds generated rows: a run without the data check does not use it
    skipped = project.run("--skip", "data,safety")
    assert skipped.code == 0 and "4 from cache" not in skipped.out, skipped.output


def test_the_data_check_alone_gets_its_row_findings_from_the_cache(project: Project) -> None:
    add_revision(project, "op.execute(\"INSERT INTO tag (name) VALUES ('a'), ('b')\")", "pass")
    fresh = project.run("--select", "data")
    cached = project.run("--select", "data")
    for result in (fresh, cached):
        assert result.code == 1 and "leaves 2 rows behind in `tag`" in result.out, result.output
    assert "(4 from cache)" in cached.out


def test_an_entry_made_with_a_wider_data_scope_does_not_serve_a_narrower_one(project: Project) -> None:
    project.edit(project.revision_file(BIO), "def downgrade():\n",
                 "def downgrade():\n    op.execute('DELETE FROM tag')\n")
    wide = project.run("--skip", "safety", "--since", "base")
    assert wide.code == 1 and f"downgrade of `{BIO}` loses" in wide.out, wide.output
    # the default scope (the head revision) puts no rows in `tag` before BIO: nothing is lost there
    for args in ((), ("--no-cache",)):
        narrow = project.run("--skip", "safety", *args)
        assert narrow.code == 0, narrow.output


# --- real servers -------------------------------------------------------------------------------

def test_not_null_column_fails_with_rows_on_servers(server: Server, project: Project) -> None:
    path = add_revision(project, AGE_UP, AGE_DOWN, "add user.age")
    add_age_to_model(project)
    # MySQL/MariaDB give the existing rows the type's implicit default, 0: the data check passes
    # there, and the safety check's warning about it is tested in test_deploy_safety.
    mysql = server.name == "mysql"
    result = project.run("--db-url", server.url, *(["--skip", "safety"] if mysql else []))
    if mysql:
        assert result.code == 0, result.output
        return
    assert result.code == 1, result.output
    assert f"{path}:" in result.out
    assert f"data: upgrade of `{NEW}` fails when `user` has rows (it passes on empty tables)" in result.out
    assert "1 error" in result.out


def test_clean_history_passes_with_rows_on_servers(server: Server, project: Project) -> None:
    result = project.run("--db-url", server.url, "--since", "base")
    assert result.code == 0, result.output
    assert "info" not in result.out


def test_downgrade_that_recreates_tables_loses_their_rows_on_servers(server: Server,
                                                                    project: Project) -> None:
    first = project.read(project.revision_file("1f5ecceb0b09"))
    create = {name: first[first.index(f"op.create_table('{name}'"):].split("\n    )\n")[0] + "\n    )"
              for name in ("tag", "post_tags")}
    path = add_revision(project, "    op.add_column('tag', sa.Column('color', sa.String(length=20)))",
                        "    op.drop_table('post_tags')\n    op.drop_table('tag')\n"
                        f"    {create['tag']}\n    {create['post_tags']}", "add tag.color")
    result = project.run("--db-url", server.url, "--skip", "drift")
    assert result.code == 1, result.output
    line = project.line_of(path, "def downgrade")
    # one finding for the revision, naming both tables
    assert (f"{path}:{line}: roundtrip: downgrade of `{NEW}` loses 3 of the 3 rows of `post_tags`; the "
            "same for 1 more: `tag`") in result.out


def test_type_change_that_cannot_convert_stored_values(server: Server, project: Project) -> None:
    path = add_revision(project, """    op.alter_column('user', 'display_name', type_=sa.Integer(),
                    existing_type=sa.String(length=120), postgresql_using='display_name::integer')""",
                        """    op.alter_column('user', 'display_name', type_=sa.String(length=120),
                    existing_type=sa.Integer())""", "display_name becomes a number")
    result = project.run("--db-url", server.url, "--skip", "drift")
    assert result.code == 1, result.output
    error = ("InvalidTextRepresentation: invalid input syntax for type integer" if server.name == "postgresql"
             else "OperationalError: (1292, \"Truncated incorrect INTEGER value: 'display_name-1'")
    assert (f"{path}:{project.line_of(path, 'op.alter_column')}: data: upgrade of `{NEW}` fails when "
            f"`user` has rows (it passes on empty tables): {error}") in result.out
    assert "stored values do not convert to the new type" in result.out


@pytest.fixture
def pg_app(tmp_path: Path) -> Iterator[Project]:
    shutil.copytree(ROOT / "tests" / "fixtures" / "pg_app", tmp_path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    yield Project(tmp_path)


def test_uuid_jsonb_and_array_columns_are_populated_on_postgres(postgres: Server, pg_app: Project) -> None:
    pg_app.add_revision(
        NEW, "dd0be5576e27",
        "op.create_unique_constraint('uq_document_title', 'document', ['title'])\n"
        "op.alter_column('document', 'tags', server_default=None)",
        "op.alter_column('document', 'tags', server_default='{}')\n"
        "op.drop_constraint('uq_document_title', 'document')", "titles are unique")
    result = pg_app.run("--db-url", postgres.url, "--since", "base", "--skip", "drift",
                        app="pg_app:create_app()")
    assert result.code == 0, result.output
    assert "info" not in result.out


def test_multibind_app_with_rows_in_both_databases(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tests" / "fixtures" / "multibind", tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shop = Project(tmp_path)
    [first] = (tmp_path / "migrations" / "versions").glob("*.py")
    parent = first.name.split("_")[0]
    shop.write("migrations/versions/d47a00000001_new.py", '''"""price and actor"""
from alembic import op
import sqlalchemy as sa

revision = 'd47a00000001'
down_revision = 'PARENT'
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()[f"upgrade_{engine_name}"]()


def downgrade(engine_name):
    globals()[f"downgrade_{engine_name}"]()


def upgrade_():
    with op.batch_alter_table('product') as batch_op:
        batch_op.add_column(sa.Column('currency', sa.String(3), nullable=False))


def downgrade_():
    with op.batch_alter_table('product') as batch_op:
        batch_op.drop_column('currency')


def upgrade_audit():
    op.create_index('ix_audit_event_action', 'audit_event', ['action'], unique=True)


def downgrade_audit():
    op.drop_index('ix_audit_event_action', table_name='audit_event')
'''.replace("PARENT", parent))
    result = shop.run("--skip", "drift", app="shop:create_app()")
    assert result.code == 1, result.output
    assert "data: upgrade of `d47a00000001` fails when `product` has rows" in result.out
    assert "1 error" in result.out
