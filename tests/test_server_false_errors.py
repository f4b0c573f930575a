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


# --- generated rows for the types the servers reflect ----------------------------------------------

PG_TYPES = {
    "interval": "sa.Column('every', postgresql.INTERVAL(), nullable=False)",
    "every-type": """
        sa.Column('every', postgresql.INTERVAL(), nullable=False),
        sa.Column('doc', postgresql.JSON(), nullable=False),
        sa.Column('docb', postgresql.JSONB(), nullable=False),
        sa.Column('numbers', postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column('words', postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column('spans', postgresql.ARRAY(postgresql.INTERVAL()), nullable=False),
        sa.Column('hosts', postgresql.ARRAY(postgresql.INET()), nullable=False),
        sa.Column('days', postgresql.ARRAY(sa.Date()), nullable=False),
        sa.Column('ids', postgresql.ARRAY(postgresql.UUID()), nullable=False),
        sa.Column('key', postgresql.UUID(), nullable=False, unique=True),
        sa.Column('host', postgresql.INET(), nullable=False, unique=True),
        sa.Column('net', postgresql.CIDR(), nullable=False),
        sa.Column('mac', postgresql.MACADDR(), nullable=False),
        sa.Column('price', postgresql.MONEY(), nullable=False),
        sa.Column('flags', postgresql.BIT(3), nullable=False, unique=True),
        sa.Column('more_flags', postgresql.BIT(5, varying=True), nullable=False),
        sa.Column('search', postgresql.TSVECTOR(), nullable=False),
        sa.Column('seats', postgresql.INT4RANGE(), nullable=False),
        sa.Column('big_seats', postgresql.INT8RANGE(), nullable=False),
        sa.Column('amounts', postgresql.NUMRANGE(), nullable=False),
        sa.Column('stay', postgresql.DATERANGE(), nullable=False),
        sa.Column('slot', postgresql.TSRANGE(), nullable=False),
        sa.Column('zoned_slot', postgresql.TSTZRANGE(), nullable=False),
        sa.Column('positive', sa.Integer(), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('raw', postgresql.BYTEA(), nullable=False),
    """,
}


@pytest.mark.parametrize("columns", sorted(PG_TYPES))
def test_rows_are_generated_for_postgres_types(postgres: Server, project: Project, columns: str) -> None:
    """A NOT NULL column added without a default to a table of these types is a data error: its
    rows were generated (a table whose rows cannot be generated stays empty, and it would pass)."""
    domains = columns == "every-type"
    project.add_revision("7e5700a1", COMMENTS, f"""
        from sqlalchemy.dialects import postgresql
        {"op.execute('CREATE EXTENSION IF NOT EXISTS citext')" if domains else ""}
        {"op.execute('CREATE DOMAIN positive AS integer CHECK (VALUE > 0)')" if domains else ""}
        op.create_table('typed', sa.Column('id', sa.Integer(), primary_key=True),
                        {PG_TYPES[columns].strip()})
        {"op.execute('ALTER TABLE typed ALTER COLUMN positive TYPE positive')" if domains else ""}
        {"op.execute('ALTER TABLE typed ALTER COLUMN name TYPE citext')" if domains else ""}
        """, f"""
        op.drop_table('typed')
        {"op.execute('DROP DOMAIN positive')" if domains else ""}
        """, doc="typed")
    path = project.add_revision("7e5700a2", "7e5700a1",
                                "op.add_column('typed', sa.Column('weight', sa.Integer(), nullable=False))",
                                "op.drop_column('typed', 'weight')", doc="weight")
    result = project.run("--db-url", postgres.url, "--select", "upgrade,roundtrip,data")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'op.add_column')}: data: upgrade of `7e5700a2` fails when "
            "`typed` has rows (it passes on empty tables): NotNullViolation") in result.out
    assert "stays empty" not in result.out and ": roundtrip:" not in result.out


def test_rows_are_generated_for_mariadb_types(mysql: Server, project: Project) -> None:
    """A type change that cannot convert the stored text is a data error: the rows were generated."""
    project.add_revision("7e5700a1", COMMENTS, """
        from sqlalchemy.dialects import mysql
        op.create_table('typed', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('label', sa.String(40), nullable=False),
                        sa.Column('mood', mysql.ENUM('happy', 'sad'), nullable=False),
                        sa.Column('tags', mysql.SET('red', 'green', 'blue'), nullable=False),
                        sa.Column('doc', mysql.JSON(), nullable=False),
                        sa.Column('born', mysql.YEAR(), nullable=False, unique=True),
                        sa.Column('count', mysql.INTEGER(unsigned=True), nullable=False),
                        sa.Column('code', mysql.INTEGER(zerofill=True), nullable=False),
                        sa.Column('flag', mysql.TINYINT(1), nullable=False),
                        sa.Column('small', mysql.SMALLINT(unsigned=True, zerofill=True), nullable=False))
        """, "op.drop_table('typed')", doc="typed")
    path = project.add_revision(
        "7e5700a2", "7e5700a1",
        "op.alter_column('typed', 'label', type_=sa.Integer(), existing_type=sa.String(40), "
        "existing_nullable=False)",
        "op.alter_column('typed', 'label', type_=sa.String(40), existing_type=sa.Integer(), "
        "existing_nullable=False)", doc="label becomes a number")
    result = project.run("--db-url", mysql.url, "--select", "upgrade,roundtrip,data")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'op.alter_column')}: data: upgrade of `7e5700a2` fails when "
            "`typed` has rows (it passes on empty tables)") in result.out
    assert "stays empty" not in result.out and ": roundtrip:" not in result.out


# --- values the models allow -------------------------------------------------------------------------

EXPORT_MODELS = {
    "enum": ("", "db.Enum('csv', 'shotgun', name='export_format')", ""),
    "enum-class": ("import enum\n\n\nclass ExportFormat(enum.Enum):\n    csv = 'comma separated'\n"
                   "    shotgun = 'scattered'\n\n\n",
                   "db.Enum(ExportFormat, name='export_format')", ""),
    "check": ("", "db.String(7)",
              "    __table_args__ = (db.CheckConstraint(\"format IN ('csv', 'shotgun')\", name='known'),)\n"),
}


@pytest.mark.parametrize("model", sorted(EXPORT_MODELS))
def test_rows_hold_the_values_the_model_allows(postgres: Server, project: Project, model: str) -> None:
    """A VARCHAR(7) the head model maps as an Enum (or limits with a CHECK constraint) is made a
    PostgreSQL enum by the head revision: the rows hold the model's values, which convert."""
    before, column, args = EXPORT_MODELS[model]
    project.append("sample_app/models/blog.py", f"\n\n{before}class Export(db.Model):\n"
                   f"    __tablename__ = 'export'\n{args}    id = db.Column(db.Integer, primary_key=True)\n"
                   f"    format = db.Column({column}, nullable=False)\n")
    project.add_revision("e4907001", COMMENTS, """
        op.create_table('export', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('format', sa.String(7), nullable=False))
        """, "op.drop_table('export')", doc="exports")
    project.add_revision("e4907002", "e4907001", """
        formats = sa.Enum('csv', 'shotgun', name='export_format')
        formats.create(op.get_bind())
        op.alter_column('export', 'format', type_=formats, existing_type=sa.String(7),
                        postgresql_using='format::export_format')
        """, """
        op.alter_column('export', 'format', type_=sa.String(7), existing_type=sa.Enum(name='export_format'))
        op.execute('DROP TYPE export_format')
        """, doc="export format enum")
    result = project.run("--db-url", postgres.url, "--select", "upgrade,roundtrip,data")
    assert result.code == 0, result.output
    assert "no problems" in result.out


# --- revisions that commit on their own --------------------------------------------------------------

@pytest.mark.parametrize("driver", ["default", "psycopg2"])
def test_revision_that_commits_on_its_own_is_walked(postgres: Server, project: Project, driver: str) -> None:
    """A data migration that commits after each batch with `op.execute(text("commit"))` (seen in a
    real project): the server leaves the transaction while psycopg2 still counts itself in it, so a
    SAVEPOINT that the round trip takes before the next revision would fail. `flask db upgrade`,
    `downgrade` and `upgrade` pass; migcheck's round trip must too."""
    project.add_revision("c0ff1e01", COMMENTS, """
        op.add_column('post', sa.Column('kind', sa.String(20)))
        op.execute(sa.text("UPDATE post SET kind = 'plain'"))
        op.execute(sa.text("commit"))
        """, "op.drop_column('post', 'kind')", doc="backfill in batches")
    project.add_revision("c0ff1e02", "c0ff1e01", "op.add_column('post', sa.Column('note', sa.Text()))",
                         "op.drop_column('post', 'note')", doc="note")
    url = postgres.url if driver == "default" else \
        postgres.url.replace("postgresql://", "postgresql+psycopg2://", 1)
    result = project.run("--db-url", url, "--select", "upgrade,roundtrip", "--since", "base", "--no-cache")
    assert result.code == 0, result.output
    assert "internal error" not in result.output and "no problems" in result.out


def test_rows_are_generated_after_a_revision_that_commits_on_its_own(postgres: Server,
                                                                    project: Project) -> None:
    """After the revision's own COMMIT (psycopg2), the rows of a table created later are still
    generated, so a NOT NULL column added to it without a default is the data error it is."""
    project.add_revision("c0ff1e01", COMMENTS, """
        op.add_column('post', sa.Column('kind', sa.String(20)))
        op.execute(sa.text("commit"))
        """, "op.drop_column('post', 'kind')", doc="commits")
    project.add_revision("c0ff1e02", "c0ff1e01",
                         "op.create_table('label_set', sa.Column('id', sa.Integer(), primary_key=True))",
                         "op.drop_table('label_set')", doc="label set")
    path = project.add_revision(
        "c0ff1e03", "c0ff1e02",
        "op.add_column('label_set', sa.Column('label', sa.String(20), nullable=False))",
        "op.drop_column('label_set', 'label')", doc="label set label")
    url = postgres.url.replace("postgresql://", "postgresql+psycopg2://", 1)
    result = project.run("--db-url", url, "--select", "upgrade,roundtrip,data", "--since", "base",
                         "--no-cache")
    assert result.code == 1, result.output
    assert f"{path}:{project.line_of(path, 'op.add_column')}: data: upgrade of `c0ff1e03` fails when " \
        "`label_set` has rows" in result.out
    assert "SAVEPOINT" not in result.output and "internal error" not in result.output
