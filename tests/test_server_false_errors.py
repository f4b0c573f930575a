"""False errors seen on real servers: each pattern here passes `flask db upgrade`, `downgrade` and
`upgrade` again, so migcheck must pass it too (issue 17)."""

from __future__ import annotations

import pytest
from conftest import Project
from servers import Server

COMMENTS = "e9e549eb0d5f"

ENUM_LIFECYCLES = {
    "drop-type": (
        """
        op.create_table('feeling', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('mood', sa.Enum('happy', 'sad', name='mood'), nullable=False))
        """,
        """
        op.drop_table('feeling')
        op.execute('DROP TYPE mood')
        """),
    "drop-type-if-exists": (
        """
        op.create_table('feeling', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('mood', sa.Enum('happy', 'sad', name='mood'), nullable=False))
        """,
        """
        op.drop_table('feeling')
        op.execute('DROP TYPE IF EXISTS mood')
        """),
    "create-type-false": (
        """
        from sqlalchemy.dialects import postgresql
        mood = postgresql.ENUM('happy', 'sad', name='mood', create_type=False)
        mood.create(op.get_bind(), checkfirst=True)
        op.create_table('feeling', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('mood', mood, nullable=False))
        """,
        """
        op.drop_table('feeling')
        op.execute('DROP TYPE mood')
        """),
    "shared-by-two-tables": (
        """
        op.create_table('feeling', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('mood', sa.Enum('happy', 'sad', name='mood'), nullable=False))
        op.create_table('weather', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('mood', sa.Enum('happy', 'sad', name='mood'), nullable=True))
        """,
        """
        op.drop_table('weather')
        op.drop_table('feeling')
        op.execute('DROP TYPE mood')
        """),
    "native-enum-false": (
        """
        op.create_table('feeling', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('mood', sa.Enum('happy', 'sad', name='mood', native_enum=False),
                                  nullable=False))
        """,
        """
        op.drop_table('feeling')
        """),
}


@pytest.mark.parametrize("variant", sorted(ENUM_LIFECYCLES))
def test_enum_lifecycle_round_trips_clean(postgres: Server, project: Project, variant: str) -> None:
    upgrade, downgrade = ENUM_LIFECYCLES[variant]
    project.add_revision("f00d01", COMMENTS, upgrade, downgrade, doc="feelings")
    # A later revision: the walk goes on after the enum's round trip, as `flask db upgrade` would.
    project.add_revision("f00d02", "f00d01", "op.add_column('post', sa.Column('mood_note', sa.Text()))",
                         "op.drop_column('post', 'mood_note')", doc="mood note")
    result = project.run("--db-url", postgres.url, "--select", "upgrade,roundtrip,data", "--since", "base")
    assert result.code == 0, result.output
    assert "no problems" in result.out
