"""Drift: every model/migration difference is one finding at the model line or the creating revision."""

import json

from conftest import Project

USER = "sample_app/models/user.py"
BLOG = "sample_app/models/blog.py"

NEW_REVISION = '''"""add audit log

Revision ID: 5c0ffee00001
Revises: e9e549eb0d5f
"""
from alembic import op
import sqlalchemy as sa

revision = '5c0ffee00001'
down_revision = 'e9e549eb0d5f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legacy_flag', sa.Boolean(), nullable=True))


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('legacy_flag')
    op.drop_table('audit_log')
'''


def test_column_type_nullable_and_server_default_changed(project: Project) -> None:
    project.edit(USER, "db.String(64)", "db.String(80)")
    project.edit(USER, "display_name = db.Column(db.String(120))",
                 "display_name = db.Column(db.String(120), nullable=False)")
    project.edit(BLOG, 'server_default="0"', 'server_default="1"')
    result = project.run()
    assert result.code == 1, result.output
    assert (f"{USER}:{project.line_of(USER, 'username =')}: drift: type of column `user.username` "
            "differs: the migrations give VARCHAR(64), the model says VARCHAR(80)") in result.out
    assert "type_=sa.String(length=80)" in result.out
    assert 'flask db migrate -m "change user.username type"' in result.out
    assert (f"{USER}:{project.line_of(USER, 'display_name =')}: drift: nullability of column "
            "`user.display_name` differs: the migrations give NULL allowed, the model says NOT NULL"
            ) in result.out
    assert (f"{BLOG}:{project.line_of(BLOG, 'view_count =')}: drift: server default of column "
            "`post.view_count` differs: the migrations give '0', the model says '1'") in result.out
    assert "3 errors" in result.out

    # The opt-out leaves server defaults alone and still finds the rest.
    result = project.run("--no-server-defaults")
    assert result.code == 1, result.output
    assert "view_count" not in result.out
    assert "2 errors" in result.out


def test_index_added_to_model_and_index_removed_from_model(project: Project) -> None:
    project.edit(USER, "bio = db.Column(db.Text)", "bio = db.Column(db.Text, index=True)")
    project.edit(BLOG, '    __table_args__ = (db.Index("ix_comment_post_id_created_at", "post_id", '
                 '"created_at"),)\n', "")
    result = project.run()
    assert result.code == 1, result.output
    assert (f"{USER}:{project.line_of(USER, 'bio =')}: drift: index `ix_user_bio` on `user` (bio) is in "
            "the model but no migration creates it") in result.out
    assert "batch_op.create_index(batch_op.f('ix_user_bio'), ['bio'], unique=False)" in result.out
    comments = project.revision_file("e9e549eb0d5f")
    line = project.line_of(comments, "create_index('ix_comment_post_id_created_at'")
    assert (f"{comments}:{line}: "
            "drift: index `ix_comment_post_id_created_at` on `comment` (post_id, created_at) is created "
            "by the migrations but is not in the model") in result.out
    assert ("fix: if the index was removed from the model on purpose, generate the drop with "
            '`flask db migrate -m "drop ix_comment_post_id_created_at"`; otherwise put it back in the '
            "model") in result.out


def test_model_tables_without_migration(project: Project) -> None:
    project.append(BLOG, '''

post_likes = db.Table(
    "post_likes",
    db.Column("post_id", db.Integer, db.ForeignKey("post.id"), primary_key=True),
    db.Column("user_id", db.Integer, db.ForeignKey("user.id"), primary_key=True),
)


class Badge(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    label = db.Column(db.String(40), nullable=False)
''')
    result = project.run()
    assert result.code == 1, result.output
    assert (f"{BLOG}:{project.line_of(BLOG, 'class Badge')}: drift: table `badge` is in the models but "
            "no migration creates it") in result.out
    assert "op.create_table('badge'," in result.out
    assert 'fix: generate a revision: `flask db migrate -m "create badge"`' in result.out
    # A table without a class is found by its Table(...) call.
    assert (f"{BLOG}:{project.line_of(BLOG, 'post_likes = db.Table(')}: drift: table `post_likes` is in "
            "the models but no migration creates it") in result.out


def test_migration_objects_without_model_point_at_the_revision(project: Project) -> None:
    path = "migrations/versions/5c0ffee00001_add_audit_log.py"
    project.write(path, NEW_REVISION)
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of(path, "create_table('audit_log'")
    assert (f"{path}:{line}: drift: table `audit_log` is "
            "created by the migrations but no model defines it") in result.out
    assert ("make sure the app imports the module that defines it (autogenerate only sees imported "
            "models)") in result.out
    assert (f"{path}:{project.line_of(path, 'add_column')}: drift: column `user.legacy_flag` is created "
            "by the migrations but is not in the model") in result.out
    assert "batch_op.drop_column('legacy_flag')" in result.out


def test_findings_come_in_file_order_whatever_the_hash_seed(project: Project) -> None:
    # Autogenerate lists the columns a table lost in set order, which str hashing changes per process.
    for column in ("display_name", "bio", "is_active", "created_at"):
        text = project.read(USER)
        start = text.index(f"    {column} = db.Column(")
        project.write(USER, text[:start] + text[text.index("\n", start) + 1:])
    orders = []
    for seed in ("1", "2", "3"):
        result = project.run("--select", "drift", "--format", "json", env={"PYTHONHASHSEED": seed})
        assert result.code == 1, result.output
        orders.append([(f["path"], f["line"], f["details"]["column"])
                       for f in json.loads(result.out)["findings"]])
    assert orders[0] == orders[1] == orders[2]
    assert sorted(column for *_, column in orders[0]) == ["bio", "created_at", "display_name", "is_active"]
    assert orders[0] == sorted(orders[0])  # by file, then line
