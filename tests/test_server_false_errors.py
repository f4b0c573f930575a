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


def _own_engine_env(project: Project) -> None:
    """env.py as Flask-Migrate < 2.5.3 wrote it: its own engine, from the URL."""
    project.edit("migrations/env.py", "    connectable = get_engine()\n",
                 "    from sqlalchemy import engine_from_config, pool\n"
                 "    connectable = engine_from_config(config.get_section(config.config_ini_section),\n"
                 "                                     prefix='sqlalchemy.', poolclass=pool.NullPool)\n")


@pytest.mark.parametrize("env", ["own-engine", "flask-sqlalchemy-engine"])
def test_own_queries_are_not_prepared_on_a_reshaped_table(postgres: Server, project: Project,
                                                          env: str) -> None:
    """psycopg 3 prepares a query after 5 runs on a connection; DDL it does not see (in a DO block)
    then changes the table's shape, and a prepared `SELECT *` of migcheck's would fail with "cached
    plan must not change result type"."""
    if env == "own-engine":
        _own_engine_env(project)
    down = COMMENTS
    for number in range(1, 7):
        revision = f"d0b10c{number}"
        project.add_revision(
            revision, down,
            f'op.execute("DO $$ BEGIN ALTER TABLE post ADD COLUMN extra_{number} INTEGER; END $$")',
            f'op.execute("DO $$ BEGIN ALTER TABLE post DROP COLUMN extra_{number}; END $$")',
            doc=f"extra {number}")
        down = revision
    project.edit("sample_app/models/blog.py", "    view_count = db.Column(",
                 "".join(f"    extra_{number} = db.Column(db.Integer)\n" for number in range(1, 7))
                 + "    view_count = db.Column(")
    result = project.run("--db-url", postgres.url, "--since", "base")
    assert result.code == 0, result.output
    assert "no problems" in result.out


# Loaded by the migcheck subprocess (PYTHONPATH): a bug in migcheck's own code, inside the walk that
# runs in env.py, where a user's error would be reported as env.py's or a revision's.
INJECTED_BUG = """
from migcheck.state import contents

_real_take = contents.take


def _buggy_take(connection, tables):
    return _real_take(None, tables)  # fails inside migcheck/state/contents.py


contents.take = _buggy_take
"""


def test_internal_error_is_not_blamed_on_the_project(postgres: Server, project: Project) -> None:
    shim = project.path / "shim" / "site-packages"  # like an installed package: not the project's code
    shim.mkdir(parents=True)
    (shim / "sitecustomize.py").write_text(INJECTED_BUG)
    env = {"PYTHONPATH": str(shim)}
    result = project.run("--db-url", postgres.url, env=env)
    assert result.code == 2, result.output
    assert "migcheck: error: internal error in migcheck (migcheck/state/contents.py:" in result.err
    assert "AttributeError" in result.err and "please report" in result.err.lower()
    assert "env.py" not in result.output and "upgrade" not in result.out and "fix:" not in result.output
    assert "Traceback" not in result.err
    verbose = project.run("--db-url", postgres.url, "--verbose", env=env)
    assert verbose.code == 2, verbose.output
    assert "Traceback" in verbose.err and "_buggy_take" in verbose.err
