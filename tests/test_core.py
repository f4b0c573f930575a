"""End to end: the sample app passes, and a model change without a migration fails."""

from conftest import Project


def test_clean_sample_app_passes(project: Project) -> None:
    result = project.run()
    assert result.code == 0, result.output
    assert "no problems" in result.out
    assert "3 revisions" in result.out


def test_column_added_to_model_only(project: Project) -> None:
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    line = project.line_of("sample_app/models/user.py", "age = db.Column")
    result = project.run()
    assert result.code == 1, result.output
    assert (f"sample_app/models/user.py:{line}: drift: column `user.age` is in the model but no "
            "migration creates it") in result.out
    assert "batch_op.add_column(sa.Column('age', sa.Integer(), nullable=True))" in result.out
    assert 'flask db migrate -m "add user.age"' in result.out


LATIN1_REVISION = '''# -*- coding: latin-1 -*-
"""flags, écrits en Latin-1"""
from alembic import op
import sqlalchemy as sa

revision = 'ddd444'  # migcheck: ignore[graph-multiple-heads]
down_revision = '428a6cc61e6a'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('flag', sa.Column('id', sa.Integer(), primary_key=True))  # « drapeau »


def downgrade():
    pass
'''


def test_revision_file_in_latin1(project: Project) -> None:
    """A coding declaration is honoured wherever migcheck reads a revision file, as Python does."""
    path = "migrations/versions/ddd444_flags.py"
    (project.path / path).write_bytes(LATIN1_REVISION.encode("latin-1"))
    result = project.run()
    assert result.code == 1, result.output
    assert "unexpected" not in result.output
    # the round trip (its downgrade line), drift (the revision that creates `flag`), and the graph
    # check (its `revision =` line, where the inline comment suppresses this file's heads finding)
    assert f"{path}:16: roundtrip: downgrade of `ddd444` leaves table `flag` behind" in result.out
    assert f"{path}:13: drift: table `flag` is created by the migrations but no model" in result.out
    assert "e9e549eb0d5f_add_comments.py:17: graph: revision `e9e549eb0d5f` is one of 2 heads" \
        in result.out
    assert f"{path}:6: graph" not in result.out and "1 suppressed" in result.out
