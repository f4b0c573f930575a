"""add user bio and post view count

Adds the optional ``user.bio`` text column and the ``post.view_count``
counter (NOT NULL, server default 0 so existing rows are backfilled).

Revision ID: 428a6cc61e6a
Revises: 1f5ecceb0b09
Create Date: 2026-11-24 05:17:31.531498

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '428a6cc61e6a'
down_revision = '1f5ecceb0b09'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.add_column(sa.Column('view_count', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bio', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('bio')

    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.drop_column('view_count')
