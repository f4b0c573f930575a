"""Upgrade base -> head on the scratch database: a failure names the revision, its line and the error."""

from conftest import Project

REVISION = '''"""{message}

Revision ID: b0b0b0b0b0b0
Revises: e9e549eb0d5f
"""
from alembic import op
import sqlalchemy as sa

revision = 'b0b0b0b0b0b0'
down_revision = 'e9e549eb0d5f'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE post SET view_count = 0")
    {operation}


def downgrade():
    pass
'''
PATH = "migrations/versions/b0b0b0b0b0b0_change.py"


def test_failing_upgrade_names_revision_statement_and_error(project: Project) -> None:
    operation = "op.create_index('ix_user_nickname', 'user', ['nickname'])"
    project.write(PATH, REVISION.format(message="index user nickname", operation=operation))
    result = project.run()
    assert result.code == 1, result.output
    assert (f"{PATH}:{project.line_of(PATH, 'op.create_index')}: upgrade: upgrade to `b0b0b0b0b0b0` "
            "(index user nickname) failed: OperationalError: no such column: nickname") in result.out
    assert "    CREATE INDEX ix_user_nickname ON user (nickname)" in result.out
    assert "fix: fix the revision so that `flask db upgrade` runs from an empty database" in result.out
    assert "drift: info: drift not checked: the upgrade to head failed" in result.out
    assert "Traceback" not in result.output


def test_sqlite_limitation_points_to_batch_mode(project: Project) -> None:
    operation = "op.create_foreign_key('fk_post_editor', 'post', 'user', ['author_id'], ['id'])"
    project.write(PATH, REVISION.format(message="add post editor", operation=operation))
    result = project.run()
    assert result.code == 1, result.output
    assert (f"{PATH}:{project.line_of(PATH, 'op.create_foreign_key')}: upgrade: upgrade to "
            "`b0b0b0b0b0b0` (add post editor) failed: NotImplementedError: No support for ALTER of "
            "constraints in SQLite dialect") in result.out
    assert ("fix: SQLite cannot ALTER this in place: wrap the operations in "
            "`with op.batch_alter_table(...)`") in result.out
    assert "--db-url" in result.out
