"""Round trip: every revision's downgrade restores the schema before it and re-upgrades cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project

BIO = "428a6cc61e6a"  # adds user.bio and post.view_count
COMMENTS = "e9e549eb0d5f"  # creates the comment table and two indexes


def test_clean_history_round_trips(project: Project) -> None:
    result = project.run("--select", "roundtrip")
    assert result.code == 0, result.output
    assert "roundtrip" in result.out and "no problems" in result.out


def test_downgrade_pass_on_create_table(project: Project) -> None:
    path = project.replace_downgrade(COMMENTS, "    pass\n")
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of(path, "def downgrade")
    assert (f"{path}:{line}: roundtrip: downgrade of `{COMMENTS}` leaves table `comment` behind"
            in result.out)
    assert "drift" not in result.out.split("migcheck:")[0]  # the models still match head


def test_downgrade_pass_on_add_column_is_caught_per_revision(project: Project) -> None:
    # `downgrade base` + `upgrade` would not notice: the table is dropped by an older revision anyway.
    path = project.replace_downgrade(BIO, "    pass\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    # one finding for the revision, naming both columns
    assert (f"downgrade of `{BIO}` leaves column `post.view_count` behind; the same for 1 more: "
            "`user.bio`") in result.out
    assert f"{path}:{project.line_of(path, 'def downgrade')}: roundtrip:" in result.out
    # the walk goes on past the bad revision: the next one is still checked (and is fine)
    assert COMMENTS not in result.out


def test_downgrade_that_forgets_an_index(project: Project) -> None:
    path = project.revision_file(COMMENTS)
    project.edit(path, "def upgrade():\n",
                 "def upgrade():\n    op.create_index('ix_post_title', 'post', ['title'])\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert f"downgrade of `{COMMENTS}` leaves index `ix_post_title` on `post` behind" in result.out


def test_downgrade_that_drops_what_it_did_not_create(project: Project) -> None:
    path = project.revision_file(COMMENTS)
    project.edit(path, "    op.drop_table('comment')",
                 "    op.drop_table('comment')\n    op.drop_index('ix_post_author_id', table_name='post')")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert (f"downgrade of `{COMMENTS}` drops index `ix_post_author_id` on `post`, which the revision "
            "did not create") in result.out


def test_downgrade_that_raises(project: Project) -> None:
    path = project.replace_downgrade(BIO, "    raise NotImplementedError('no way back')\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    line = project.line_of(path, "raise NotImplementedError")
    assert (f"{path}:{line}: roundtrip: downgrade of `{BIO}` raises NotImplementedError: no way back"
            in result.out)


def test_irreversible_mark_skips_downgrades_below_it(project: Project) -> None:
    path = project.replace_downgrade(BIO, "    raise NotImplementedError\n")
    project.edit(path, "revision = ", "# migcheck: irreversible (data migration)\nrevision = ")
    result = project.run("--select", "roundtrip")
    assert result.code == 0, result.output
    assert (f"{path}:{project.line_of(path, 'migcheck: irreversible')}: roundtrip: info: downgrades of "
            f"`{BIO}` and 1 revision before it are not tested: it is marked irreversible") in result.out


def test_branch_and_merge_history(project: Project) -> None:
    project.add_revision("aaa111", COMMENTS,
                         "op.create_table('badge', sa.Column('id', sa.Integer(), primary_key=True))",
                         "op.drop_table('badge')", "badges")
    project.add_revision("bbb222", COMMENTS,
                         "op.create_table('flag', sa.Column('id', sa.Integer(), primary_key=True))",
                         doc="flags")
    project.add_revision("ccc333", ("aaa111", "bbb222"), "pass", doc="merge badges and flags")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert "downgrade of `bbb222` leaves table `flag` behind" in result.out
    assert "aaa111" not in result.out and "ccc333" not in result.out
    assert "graph" not in result.out.split("migcheck:")[0]  # merged: one head


def test_view_left_behind(project: Project) -> None:
    path = project.revision_file(COMMENTS)
    project.edit(path, "def upgrade():\n",
                 "def upgrade():\n    op.execute('CREATE VIEW recent AS SELECT 1')\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert f"downgrade of `{COMMENTS}` leaves view `recent` behind" in result.out


def test_downgrade_that_leaves_a_row_is_reported_before_the_reupgrade_fails(project: Project) -> None:
    # A data migration whose downgrade leaves its row: the schema is restored, and the re-upgrade
    # would fail on tag.name's UNIQUE constraint; the rows in the snapshot say why first.
    path = project.revision_file(COMMENTS)
    project.edit(path, "def upgrade():\n",
                 "def upgrade():\n    op.execute(\"INSERT INTO tag (name) VALUES ('welcome')\")\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'def downgrade')}: roundtrip: downgrade of `{COMMENTS}` "
            "leaves 1 row behind in `tag` (it had 0 before the upgrade)") in result.out
    assert "re-upgrade" not in result.out.split("fix:")[0]


def _guard_against_a_second_run(project: Project) -> str:
    """Something neither the schema nor the rows show: a guard in the revision's module."""
    path = project.revision_file(COMMENTS)
    project.edit(path, "def upgrade():\n", "_RAN = []\n\n\ndef upgrade():\n    if _RAN:\n"
                 "        raise RuntimeError('ran twice')\n    _RAN.append(1)\n")
    return path


def test_reupgrade_failure_is_reported(project: Project) -> None:
    # With --reupgrade, every revision is upgraded again: the re-upgrade's failure names its line.
    path = _guard_against_a_second_run(project)
    result = project.run("--select", "roundtrip", "--reupgrade")
    assert result.code == 1, result.output
    line = project.line_of(path, "raise RuntimeError")
    assert (f"{path}:{line}: roundtrip: re-upgrade of `{COMMENTS}` after its downgrade fails: "
            "RuntimeError: ran twice") in result.out
    # The rebuild's upgrade of the same revision fails the same way: one cause, said once.
    assert [x for x in result.out.splitlines() if "ran twice" in x] == [
        f"{path}:{line}: roundtrip: re-upgrade of `{COMMENTS}` after its downgrade fails: RuntimeError: "
        "ran twice"], result.out


def test_default_rolls_the_downgrade_back_instead_of_reupgrading(project: Project) -> None:
    # On SQLite the checked downgrade is rolled back to the state after the upgrade: each upgrade()
    # runs once, so what only a second run in one process shows is --reupgrade's to find.
    runs = _count_runs(project, "1f5ecceb0b09")
    _guard_against_a_second_run(project)
    result = project.run("--select", "roundtrip", "--no-cache")
    assert result.code == 0, result.output
    assert runs.read_text().count("run") == 1


def test_reupgrade_in_the_config(project: Project) -> None:
    path = _guard_against_a_second_run(project)
    project.write("pyproject.toml", "[tool.migcheck]\nreupgrade = true\n")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'raise RuntimeError')}: roundtrip: re-upgrade of "
            f"`{COMMENTS}` after its downgrade fails: RuntimeError: ran twice") in result.out


def test_second_base_with_a_branch_label(project: Project) -> None:
    project.write("migrations/versions/eee555_audit_branch.py", '''"""audit log, its own branch"""
from alembic import op
import sqlalchemy as sa

revision = 'eee555'
down_revision = None
branch_labels = ('audit',)
depends_on = None


def upgrade():
    op.create_table('audit_log', sa.Column('id', sa.Integer(), primary_key=True))
    op.create_index('ix_audit_log_id', 'audit_log', ['id'])


def downgrade():
    op.drop_table('audit_log')
''')
    result = project.run("--select", "graph,roundtrip")
    assert result.code == 0, result.output
    assert "4 revisions" in result.out
    project.edit("migrations/versions/eee555_audit_branch.py", "    op.drop_table('audit_log')", "    pass")
    result = project.run("--select", "graph,roundtrip")
    assert result.code == 1, result.output
    assert "downgrade of `eee555` leaves table `audit_log` behind" in result.out


def test_downgrade_sqlite_cannot_run_gets_the_batch_mode_hint(project: Project) -> None:
    # The upgrade adds the foreign key in batch mode; the downgrade drops it outside, which only
    # SQLite refuses: the hint says so, as the upgrade check's does.
    path = project.add_revision(
        "d1d100000001", COMMENTS,
        "with op.batch_alter_table('post') as batch_op:\n"
        "    batch_op.create_foreign_key('fk_post_id_tag', 'tag', ['id'], ['id'])",
        "op.drop_constraint('fk_post_id_tag', 'post', type_='foreignkey')", "post tag key")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    line = project.line_of(path, "op.drop_constraint")
    assert f"{path}:{line}: roundtrip: downgrade of `d1d100000001` raises NotImplementedError" in result.out
    assert "fix: SQLite cannot ALTER this in place: wrap the operations in `with op.batch_alter_table" \
        in result.out



def test_downgrade_dropping_an_unnamed_constraint_is_told_to_name_it(project: Project) -> None:
    # Autogenerate writes `None` for a foreign key the model leaves unnamed (in an app without a
    # naming convention); its downgrade cannot drop it, in batch mode (here) or with DROP CONSTRAINT
    # (on a server).
    project.drop_naming_convention()
    path = project.add_revision(
        "d1d100000002", COMMENTS,
        "with op.batch_alter_table('post') as batch_op:\n"
        "    batch_op.create_foreign_key('fk_post_id_tag', 'tag', ['id'], ['id'])",
        "with op.batch_alter_table('post') as batch_op:\n"
        "    batch_op.drop_constraint(None, type_='foreignkey')", "post tag key")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    line = project.line_of(path, "batch_op.drop_constraint") - 1  # the batch runs as its block ends
    assert (f"{path}:{line}: roundtrip: downgrade of `d1d100000002` raises ValueError: Constraint must "
            "have a name") in result.out
    assert "fix: the constraint has no name: autogenerate writes `None`" in result.out


def _count_runs(project: Project, revision: str) -> Path:
    """Make a revision's upgrade() note each run in a file; returns the file."""
    runs = project.path / "runs.txt"
    project.edit(project.revision_file(revision), "def upgrade():\n",
                 f"def upgrade():\n    open({str(runs)!r}, 'a').write('run\\n')\n")
    return runs


@pytest.mark.parametrize("reupgrade", [False, True])
def test_after_a_bad_downgrade_the_walk_goes_back_instead_of_rebuilding(project: Project,
                                                                         reupgrade: bool) -> None:
    # Two bad revisions after the first one: rebuilding from base after each would run the first
    # revision's upgrade four times (upgrade, re-upgrade, two rebuilds). By default, each bad
    # downgrade is rolled back to the state after its upgrade: the first upgrade runs once. With
    # --reupgrade, the first bad downgrade costs one rebuild (SQLite then walks in one transaction);
    # the second goes back to a savepoint.
    runs = _count_runs(project, "1f5ecceb0b09")
    bio = project.replace_downgrade(BIO, "    pass\n")
    comments = project.replace_downgrade(COMMENTS, "    pass\n")
    result = project.run("--select", "roundtrip", "--no-cache", *(["--reupgrade"] if reupgrade else []))
    assert result.code == 1, result.output
    assert f"{bio}:{project.line_of(bio, 'def downgrade')}: roundtrip: downgrade of `{BIO}` leaves " \
        "column `post.view_count` behind" in result.out
    assert (f"{comments}:{project.line_of(comments, 'def downgrade')}: roundtrip: downgrade of "
            f"`{COMMENTS}` leaves table `comment` behind") in result.out
    assert runs.read_text().count("run") == (3 if reupgrade else 1)


def test_a_statement_that_cannot_run_in_a_transaction_is_not_blamed_on_the_walk(project: Project) -> None:
    # After the first bad downgrade SQLite walks in one transaction, where VACUUM cannot run; the
    # revision runs again the usual way, as `flask db upgrade` runs it, and passes.
    project.replace_downgrade(BIO, "    pass\n")
    project.edit(project.revision_file(COMMENTS), "def upgrade():\n",
                 "def upgrade():\n    op.execute('VACUUM')\n")
    result = project.run("--select", "upgrade,roundtrip", "--no-cache")
    assert result.code == 1, result.output
    assert f"downgrade of `{BIO}` leaves column `post.view_count` behind" in result.out
    assert COMMENTS not in result.out
    assert "VACUUM" not in result.output
