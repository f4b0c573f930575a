"""Findings name the true cause and a fix that is safe to follow (issue #19, section 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import flask_sqlalchemy
from conftest import ROOT, Project, Result
from servers import Server

COMMENTS = "e9e549eb0d5f"  # creates the comment table and two indexes

LEGACY_MODEL = '''from sqlalchemy import Column, Integer

try:
    from sqlalchemy.orm import declarative_base
except ImportError:  # SQLAlchemy 1.3
    from sqlalchemy.ext.declarative import declarative_base

Base = declarative_base()


class Legacy(Base):
    __tablename__ = "legacy"
    id = Column(Integer, primary_key=True)
'''


def wrong_metadata(project: Project) -> None:
    """env.py compares with a declarative base holding one table; the app's models are on db.metadata."""
    project.write("sample_app/models/legacy.py", LEGACY_MODEL)
    project.append("sample_app/models/__init__.py", "from .legacy import Legacy  # noqa\n")
    project.add_revision("1e6ac1000001", COMMENTS,
                         "op.create_table('legacy', sa.Column('id', sa.Integer(), primary_key=True))",
                         "op.drop_table('legacy')", "legacy")
    project.edit("migrations/env.py", "target_db = current_app.extensions['migrate'].db\n",
                 "target_db = current_app.extensions['migrate'].db\n"
                 "from sample_app import models\ntarget_metadata = models.legacy.Base.metadata\n")
    project.edit("migrations/env.py", "            target_metadata=get_metadata(),",
                 "            target_metadata=target_metadata,")


def check_wrong_metadata(project: Project, result_out: str, code: int) -> None:
    assert code == 1, result_out
    line = project.line_of("migrations/env.py", "target_metadata = models.legacy.Base.metadata")
    found = [x for x in result_out.splitlines() if ": drift: " in x]
    assert len(found) == 1, result_out
    assert found[0].startswith(f"migrations/env.py:{line}: drift: env.py hands autogenerate "
                               "`models.legacy.Base.metadata` (1 table: `legacy`), not the MetaData "
                               "the models use (`db.")
    assert "5 tables that models define (`comment`, `post`, `post_tags`, `tag`, `user`)" in found[0]
    assert "drop user" not in result_out and "migrate -m" not in result_out
    assert "op.drop_table" not in result_out


def test_env_py_with_the_wrong_metadata_is_one_finding_at_env_py(project: Project) -> None:
    wrong_metadata(project)
    result = project.run("--select", "drift")
    check_wrong_metadata(project, result.out, result.code)
    report = json.loads(project.run("--select", "drift", "--format", "json").out)
    [finding] = report["findings"]
    assert finding["rule"] == "drift-wrong-metadata"


def test_env_py_with_the_wrong_metadata_on_a_server(project: Project, server: Server) -> None:
    wrong_metadata(project)
    result = project.run("--select", "drift", "--db-url", server.url)
    check_wrong_metadata(project, result.out, result.code)


def test_env_py_handing_a_bind_the_default_metadata_names_that_binds(tmp_path: Path) -> None:
    """The fix names the bind's own MetaData (db.metadata holds every bind's tables on 2.x)."""
    shutil.copytree(ROOT / "tests" / "fixtures" / "multibind", tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shop = Project(tmp_path)
    shop.edit("migrations/env.py", "target_metadata=get_metadata(name),\n                **conf_args",
              "target_metadata=get_metadata(''),\n                **conf_args")
    result = shop.run("--select", "drift", app="shop:create_app()",
                      env={"AUDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite'}"})
    assert result.code == 1, result.output
    [found] = [line for line in result.out.splitlines() if "drift: env.py hands" in line]
    line = shop.line_of("migrations/env.py", "target_metadata=get_metadata('')")
    assert found.startswith(f"migrations/env.py:{line}: drift: env.py hands autogenerate `get_metadata('')` "
                            "(1 table: `product`), not ")
    assert "1 table that models define (`audit_event`) look removed" in found
    if hasattr(flask_sqlalchemy.SQLAlchemy(), "metadatas"):  # 3.x: a MetaData per bind
        assert "the MetaData the models of bind `audit` use (`db.metadatas['audit']`)" in found
        assert "fix: hand bind `audit` `db.metadatas['audit']`" in result.out
    else:
        assert ("a MetaData of the models of bind `audit` alone (`db.metadata` holds every bind's "
                "tables)") in found
        assert "fix: hand bind `audit` a MetaData of its own tables" in result.out
    assert "db.metadatas[None]" not in result.out and "`db.metadata`)" not in result.out


SETTINGS = "5e771a000001"
RESET = "5e771a000002"


def delete_in_upgrade(project: Project) -> None:
    """A data migration whose upgrade() deletes every row of `setting` by design; downgrade() is pass."""
    project.add_revision(SETTINGS, COMMENTS, """
        op.create_table('setting', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('name', sa.String(40), nullable=False))
        for number in range(46):
            op.execute(f"INSERT INTO setting (name) VALUES ('s{number}')")
    """, "op.drop_table('setting')", "settings")
    project.add_revision(RESET, SETTINGS, """
        op.execute("DELETE FROM setting")
    """, doc="reset settings")


def test_rows_the_upgrade_deletes_are_a_warning_at_the_delete(project: Project) -> None:
    delete_in_upgrade(project)
    path = project.revision_file(RESET)
    result = project.run("--select", "roundtrip")
    assert result.code == 0, result.output
    assert (f"{path}:{project.line_of(path, 'DELETE FROM setting')}: roundtrip: warning: the upgrade of "
            f"`{RESET}` deletes 46 of the 46 rows of `setting`; its downgrade cannot bring them back"
            in result.out), result.out
    assert "# migcheck: irreversible" in result.out and "loses" not in result.out
    # The marker at the end of the statement accepts that deletion, and only it.
    project.edit(path, 'op.execute("DELETE FROM setting")',
                 'op.execute("DELETE FROM setting")  # migcheck: irreversible')
    result = project.run("--select", "roundtrip")
    assert result.code == 0, result.output
    assert "deletes 46" not in result.out and "1 suppressed" in result.out, result.out
    assert "not tested" not in result.out  # the revision is still round-tripped


def test_rows_the_downgrade_loses_stay_an_error(project: Project) -> None:
    delete_in_upgrade(project)
    (project.path / project.revision_file(RESET)).unlink()
    project.add_revision("5e771a000003", SETTINGS, """
        with op.batch_alter_table('setting') as batch_op:
            batch_op.add_column(sa.Column('note', sa.Text()))
    """, """
        op.drop_table('setting')
        op.create_table('setting', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('name', sa.String(40), nullable=False))
    """, "setting notes")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert "downgrade of `5e771a000003` loses 46 of the 46 rows of `setting`" in result.out
    assert "deletes" not in result.out


def test_rows_the_upgrade_deletes_on_a_server(project: Project, server: Server) -> None:
    delete_in_upgrade(project)
    path = project.revision_file(RESET)
    result = project.run("--select", "roundtrip", "--db-url", server.url)
    assert result.code == 0, result.output
    assert (f"{path}:{project.line_of(path, 'DELETE FROM setting')}: roundtrip: warning: the upgrade of "
            f"`{RESET}` deletes 46 of the 46 rows of `setting`" in result.out), result.out


DROPS = "d20b00000001"


def upgrade_drops_and_renames(project: Project) -> None:
    """The upgrade drops a column and renames a foreign key; its downgrade() is pass."""
    project.add_revision(DROPS, COMMENTS, """
        with op.batch_alter_table('post') as batch_op:
            batch_op.drop_column('view_count')
            batch_op.drop_constraint('fk_post_author_id_user', type_='foreignkey')
            batch_op.create_foreign_key('fk_post_author', 'user', ['author_id'], ['id'])
    """, doc="drop view count")


def check_drops_and_renames(project: Project, out: str) -> None:
    assert f"upgrade of `{DROPS}` drops column `post.view_count`; its downgrade does not restore it" in out
    assert (f"upgrade of `{DROPS}` renames foreign key `fk_post_author_id_user` on `post` to "
            "`fk_post_author`; its downgrade does not rename it back") in out
    assert "which the revision did not create" not in out and "fk_post_author` on `post` behind" not in out


def test_what_the_upgrade_drops_or_renames_is_said_as_such(project: Project) -> None:
    upgrade_drops_and_renames(project)
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    check_drops_and_renames(project, result.out)


def test_what_the_upgrade_drops_or_renames_on_a_server(project: Project, server: Server) -> None:
    upgrade_drops_and_renames(project)
    result = project.run("--select", "roundtrip", "--db-url", server.url)
    assert result.code == 1, result.output
    check_drops_and_renames(project, result.out)


def test_a_column_replaced_by_another_is_no_rename(project: Project) -> None:
    """A column dropped and another of the same type added are two changes, not a rename: the new
    column does not hold the old one's values, and renaming it back would not restore them."""
    path = project.add_revision(DROPS, COMMENTS, """
        with op.batch_alter_table('post') as batch_op:
            batch_op.add_column(sa.Column('archived', sa.Integer(), server_default='0', nullable=False))
            batch_op.drop_column('view_count')
    """, doc="archived instead of view count")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert f"upgrade of `{DROPS}` drops column `post.view_count`; its downgrade does not restore it" \
        in result.out
    assert f"{path}:{project.line_of(path, 'def downgrade')}: roundtrip: downgrade of `{DROPS}` leaves " \
        "column `post.archived` behind" in result.out
    assert "renames" not in result.out
    # a real rename is still said as one
    added = "batch_op.add_column(sa.Column('archived', sa.Integer(), server_default='0', nullable=False))"
    project.edit(path, f"        {added}\n        batch_op.drop_column('view_count')",
                 "        batch_op.alter_column('view_count', new_column_name='archived')")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert (f"upgrade of `{DROPS}` renames column `post.view_count` to `archived`; its downgrade does not "
            "rename it back") in result.out


def test_rows_left_behind_say_what_was_observed(project: Project) -> None:
    # The upgrade inserts only when the row is missing: upgrading again would not trip over it.
    path = project.revision_file(COMMENTS)
    project.edit(path, "def upgrade():\n", "def upgrade():\n    op.execute(\"INSERT INTO tag (name) "
                 "SELECT 'welcome' WHERE NOT EXISTS (SELECT 1 FROM tag WHERE name = 'welcome')\")\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert (f"downgrade of `{COMMENTS}` leaves 1 row behind in `tag` (it had 0 before the upgrade)"
            in result.out)
    assert "trip over" not in result.out


def test_skipped_upgrade_that_fails_is_said_once_as_could_not_check(project: Project) -> None:
    path = project.add_revision("bad000000001", COMMENTS, "raise RuntimeError('not ready')",
                                doc="not ready")
    result = project.run("--skip", "upgrade")
    assert result.code == 2, result.output
    lines = [line for line in result.out.splitlines() if ": upgrade: " in line or ": drift: " in line]
    assert lines == [f"{path}:{project.line_of(path, 'raise RuntimeError')}: upgrade: drift, roundtrip, "
                     "safety, data could not run: they need the upgrade to head, and upgrade to "
                     "`bad000000001` (not ready) failed: RuntimeError: not ready"], result.out
    assert ("checks: graph, imports; not run: drift (the upgrade to head failed), roundtrip, safety, data "
            "(stopped where the upgrade failed at `bad000000001`)") in result.out


def test_summary_names_only_the_checks_that_ran(project: Project) -> None:
    project.add_revision("0b5e00000001", "no_such_revision", "pass", doc="orphan")
    result = project.run()
    assert result.code == 2, result.output
    assert ("checks: graph; not run: upgrade, drift, imports, roundtrip, safety, data (the revision "
            "history cannot be read)") in result.out
    # A scope without revisions: the data check has nothing to run on.
    (project.path / project.revision_file("0b5e00000001")).unlink()
    result = project.run("--select", "upgrade,data", "--since", COMMENTS)
    assert result.code == 0, result.output
    assert "checks: upgrade; not run: data (no revision in scope)" in result.out
    report = json.loads(project.run("--select", "upgrade,data", "--since", COMMENTS, "--format", "json").out)
    assert report["checks"] == ["upgrade"] and report["not_run"] == {"data": "no revision in scope"}


def fk_ondelete(project: Project) -> None:
    """The model's foreign key gains ON DELETE CASCADE; no migration changes it."""
    project.edit("sample_app/models/blog.py",
                 'author_id = db.Column(db.Integer, db.ForeignKey("user.id"), nullable=False, index=True)\n'
                 '    body = db.Column(db.Text, nullable=False)',
                 'author_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"), '
                 'nullable=False, index=True)\n    body = db.Column(db.Text, nullable=False)')


def check_fk_ondelete(project: Project, out: str) -> None:
    found = [line for line in out.splitlines() if ": drift: " in line]
    line = project.line_of("sample_app/models/blog.py", 'db.ForeignKey("user.id", ondelete="CASCADE")')
    assert found == [f"sample_app/models/blog.py:{line}: drift: foreign key `fk_comment_author_id_user` on "
                     "`comment` (author_id) differs only in ON DELETE (CASCADE in the model, none in the "
                     "migrations)"], out


def test_foreign_key_that_differs_only_in_on_delete_is_one_finding(project: Project) -> None:
    fk_ondelete(project)
    result = project.run("--select", "drift")
    assert result.code == 1, result.output
    check_fk_ondelete(project, result.out)


def test_foreign_key_that_differs_only_in_on_delete_on_a_server(project: Project, server: Server) -> None:
    fk_ondelete(project)
    result = project.run("--select", "drift", "--db-url", server.url)
    assert result.code == 1, result.output
    check_fk_ondelete(project, result.out)


def raw_sql_index(project: Project) -> str:
    """A later revision creates an index with raw SQL that the model does not have."""
    return project.add_revision("1d0000000001", COMMENTS, """
        op.execute("CREATE INDEX ix_post_title ON post (title)")
    """, "op.drop_index('ix_post_title', table_name='post')", "index post titles")


def test_drift_points_at_the_revision_that_created_the_object_with_raw_sql(project: Project) -> None:
    path = raw_sql_index(project)
    result = project.run("--select", "drift")
    assert result.code == 1, result.output
    line = project.line_of(path, "CREATE INDEX ix_post_title")
    assert (f"{path}:{line}: drift: index `ix_post_title` on `post` (title) is created by the migrations "
            "but is not in the model") in result.out, result.out


def test_drift_points_at_the_raw_sql_revision_on_a_server(project: Project, server: Server) -> None:
    path = raw_sql_index(project)
    result = project.run("--select", "drift", "--db-url", server.url)
    assert result.code == 1, result.output
    line = project.line_of(path, "CREATE INDEX ix_post_title")
    assert f"{path}:{line}: drift: index `ix_post_title` on `post` (title)" in result.out, result.out


def dangling_foreign_key(project: Project, created_later: bool) -> tuple[str, str]:
    """A revision creates a foreign key to a table that no revision before it creates (SQLite accepts
    it); a later revision then fails over the missing table. With `created_later`, a revision after
    those creates the table; otherwise none does."""
    first = project.add_revision("da0000000001", COMMENTS, """
        op.create_table('badge', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('kind_id', sa.Integer(), sa.ForeignKey('badge_kind.id')))
    """, "op.drop_table('badge')", "badges")
    later = project.add_revision("da0000000002", "da0000000001", """
        op.execute("INSERT INTO badge (kind_id) VALUES (1)")
    """, "op.execute('DELETE FROM badge')", "first badge")
    if created_later:
        project.add_revision("da0000000003", "da0000000002", """
            op.create_table('badge_kind', sa.Column('id', sa.Integer(), primary_key=True))
        """, "op.drop_table('badge_kind')", "badge kinds")
    # The app turns on SQLite's foreign keys, as many do: now the missing table matters.
    project.append("sample_app/extensions.py", """

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, "connect")
def _foreign_keys_on(connection, record):
    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA foreign_keys=ON")
""")
    return first, later


def test_dangling_foreign_key_is_blamed_where_it_is_made(project: Project) -> None:
    first, _ = dangling_foreign_key(project, created_later=True)
    result = project.run("--select", "upgrade")
    assert result.code == 1, result.output
    line = project.line_of(first, "sa.ForeignKey('badge_kind.id')")
    assert (f"{first}:{line}: upgrade: upgrade to `da0000000002` (first badge) failed: OperationalError: "
            "no such table: main.badge_kind: revision `da0000000001` made a foreign key to `badge_kind`, "
            "which only a later revision creates") in result.out, result.out
    assert "--db-url" in result.out


def test_dangling_foreign_key_fails_where_it_is_made_on_a_server(project: Project, server: Server) -> None:
    first, _ = dangling_foreign_key(project, created_later=True)
    result = project.run("--select", "upgrade", "--db-url", server.url)
    # The server refuses the foreign key where it is made: an upgrade error there, as on SQLite.
    assert result.code == 1, result.output
    assert f"{first}:" in result.out and "upgrade to `da0000000001` (badges) failed" in result.out, \
        result.output
    assert "da0000000002" not in result.out


def assert_needs_start(project: Project, first: str, result: Result) -> None:
    assert result.code == 2, result.output
    assert (f"{first}:" in result.out and "upgrade to `da0000000001` (badges) acts on table `badge_kind`, "
            "which no revision creates") in result.out, result.output
    assert "start_from" in result.out


def test_foreign_key_to_a_table_no_revision_creates_needs_a_start(project: Project) -> None:
    first, _ = dangling_foreign_key(project, created_later=False)
    assert_needs_start(project, first, project.run("--select", "upgrade"))


def test_foreign_key_to_a_table_no_revision_creates_needs_a_start_on_a_server(project: Project,
                                                                              server: Server) -> None:
    """The servers refuse the key where it is made; every database says the same thing."""
    first, _ = dangling_foreign_key(project, created_later=False)
    assert_needs_start(project, first, project.run("--select", "upgrade", "--db-url", server.url))
