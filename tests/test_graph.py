"""The revision graph: heads, cycles, missing and duplicate revisions, each at its revision file."""

from conftest import Project

FIRST, SECOND, THIRD = "1f5ecceb0b09", "428a6cc61e6a", "e9e549eb0d5f"

BRANCH = '''"""add user avatar

Revision ID: a1b2c3d4e5f6
Revises: 428a6cc61e6a
"""
from alembic import op
import sqlalchemy as sa

revision = 'a1b2c3d4e5f6'
down_revision = '428a6cc61e6a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('avatar_url', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('avatar_url')
'''


def test_two_heads_are_listed_with_their_files(project: Project) -> None:
    branch = project.write("migrations/versions/a1b2c3d4e5f6_add_user_avatar.py", BRANCH)
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    avatar_url = db.Column(db.String(255))\n")
    branch_file, head_file = str(branch.relative_to(project.path)), project.revision_file(THIRD)
    result = project.run()
    assert result.code == 1, result.output
    listing = f"`a1b2c3d4e5f6` ({branch_file}), `{THIRD}` ({head_file})"
    assert (f"{branch_file}:{project.line_of(branch_file, 'revision = ')}: graph: revision `a1b2c3d4e5f6` "
            f"is one of 2 heads: {listing}") in result.out
    assert (f"{head_file}:{project.line_of(head_file, 'revision = ')}: graph: revision `{THIRD}` is one "
            f"of 2 heads: {listing}") in result.out
    assert 'fix: merge them: `flask db merge heads -m "merge heads"`' in result.out
    # Both branches are upgraded, so the models match and drift has nothing to say.
    assert "drift:" not in result.out
    assert "2 errors" in result.out


def test_cycle_stops_the_run(project: Project) -> None:
    first = project.revision_file(FIRST)
    project.edit(first, "down_revision = None", f"down_revision = '{THIRD}'")
    result = project.run()
    assert result.code == 2, result.output
    assert (f"{first}:{project.line_of(first, 'down_revision =')}: graph: the revisions form a cycle: "
            f"`{FIRST}` ({first}) -> `{THIRD}` ({project.revision_file(THIRD)}) -> `{SECOND}` "
            f"({project.revision_file(SECOND)}) -> `{FIRST}` ({first})") in result.out
    assert "could not check everything" in result.out
    assert "upgrade:" not in result.out and "drift:" not in result.out


def test_missing_down_revision(project: Project) -> None:
    third = project.revision_file(THIRD)
    project.edit(third, f"down_revision = '{SECOND}'", "down_revision = 'deadbeef0000'")
    result = project.run()
    assert result.code == 2, result.output
    assert (f"{third}:{project.line_of(third, 'down_revision =')}: graph: down_revision `deadbeef0000` of "
            f"`{THIRD}` does not exist") in result.out
    assert "fix: restore the missing revision file, or point down_revision at an existing" in result.out


def test_duplicate_revision_id(project: Project) -> None:
    third = project.revision_file(THIRD)
    copy = "migrations/versions/0000_add_comments_copy.py"
    project.write(copy, project.read(third))
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of(third, "revision = ")
    assert (f"{third}:{line}: graph: revision id `{THIRD}` is also used by {copy}; alembic silently "
            "keeps only one of the files") in result.out
    assert f"{copy}:{line}: graph: revision id `{THIRD}` is also used by {third}" in result.out
    assert "UserWarning" not in result.output  # alembic's warning is replaced by the findings
