"""add comments

Adds the ``comment`` table (FKs to ``post``, cascading, and ``user``), with an
index on the author and a composite index for listing a post's comments in
order.

Revision ID: e9e549eb0d5f
Revises: 428a6cc61e6a
Create Date: 2026-11-24 05:17:41.949970

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e9e549eb0d5f'
down_revision = '428a6cc61e6a'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('comment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('is_approved', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['user.id'], name=op.f('fk_comment_author_id_user')),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], name=op.f('fk_comment_post_id_post'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comment'))
    )
    with op.batch_alter_table('comment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comment_author_id'), ['author_id'], unique=False)
        batch_op.create_index('ix_comment_post_id_created_at', ['post_id', 'created_at'], unique=False)


def downgrade():
    # Dropping the table drops its indexes. Dropping them first, as autogenerate writes it, fails on
    # MySQL/MariaDB: the foreign keys on post_id and author_id need those indexes.
    op.drop_table('comment')
