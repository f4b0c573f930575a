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


def test_missing_alembic_ini_fails_as_flask_db_upgrade_does(project: Project) -> None:
    """env.py's fileConfig(alembic.ini) really runs: without the file, `flask db upgrade` fails."""
    (project.path / "migrations" / "alembic.ini").unlink()
    line = project.line_of("migrations/env.py", "fileConfig(config.config_file_name)")
    result = project.run()
    assert result.code == 1, result.output
    assert f"migrations/env.py:{line}: upgrade: env.py failed before any migration ran: " in result.out
    assert "restore or fix alembic.ini" in result.out


def test_broken_alembic_ini_fails_the_upgrade(project: Project) -> None:
    project.edit("migrations/alembic.ini", "class = StreamHandler", "class = NoSuchHandler")
    line = project.line_of("migrations/env.py", "fileConfig(config.config_file_name)")
    result = project.run("--select", "upgrade")
    assert result.code == 1, result.output
    assert f"migrations/env.py:{line}: upgrade: env.py failed before any migration ran: " in result.out
    assert "NoSuchHandler" in result.out


def test_alembic_ini_logging_stays_quiet_and_writes_no_file(project: Project) -> None:
    """What alembic.ini configures (log lines, a log file) does not happen in migcheck's run."""
    project.edit("migrations/alembic.ini", "[handlers]\nkeys = console",
                 "[handlers]\nkeys = console,logfile")
    project.edit("migrations/alembic.ini", "[logger_alembic]\nlevel = INFO\nhandlers =",
                 "[logger_alembic]\nlevel = INFO\nhandlers = logfile")
    project.append("migrations/alembic.ini", "\n[handler_logfile]\nclass = FileHandler\n"
                   "args = ('migrations.log',)\nlevel = NOTSET\nformatter = generic\n")
    result = project.run()
    assert result.code == 0 and result.err == "", result.output
    assert not (project.path / "migrations.log").exists()


def test_revision_that_calls_exit_is_an_upgrade_failure(project: Project) -> None:
    # redash's base revision prints "please run: ./manage.py db stamp ..." and calls exit() when the
    # columns it adds exist already. `flask db upgrade` stops there (exit 0, nothing done); migcheck
    # must not stop silently with exit 0 and no report.
    project.add_revision("e817e817", "e9e549eb0d5f", """
        op.add_column('post', sa.Column('is_draft', sa.Boolean()))
        print("Can't run this migration, please run: ./manage.py db stamp e817e817")
        exit()
        """, "op.drop_column('post', 'is_draft')", doc="is draft")
    path = project.revision_file("e817e817")
    result = project.run("--no-cache")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'exit()')}: upgrade: upgrade to `e817e817` (is draft) failed: "
            "exit() was called (SystemExit: None)") in result.out
    assert "internal error" not in result.output


def test_an_error_is_told_the_same_in_every_run(project: Project) -> None:
    """An error that shows an object (SQLAlchemy's CompileError for a constraint without a name)
    is told without its memory address, which changes from run to run."""
    operation = "raise RuntimeError(f'cannot drop {object()}')"
    project.write(PATH, REVISION.format(message="shows an object", operation=operation))
    result = project.run()
    assert result.code == 1, result.output
    assert ("upgrade to `b0b0b0b0b0b0` (shows an object) failed: RuntimeError: cannot drop "
            "<object object>") in result.out
    assert " at 0x" not in result.out


def test_an_unnamed_constraint_in_batch_mode_is_told_to_get_a_name(project: Project) -> None:
    """Alembic's batch mode refuses a constraint without a name (autogenerate writes `None` where the
    model leaves one unnamed, in an app without a naming convention): the hint says to name it,
    not to use the batch mode it is in."""
    project.drop_naming_convention()
    operation = ("with op.batch_alter_table('post') as batch_op:\n"
                 "        batch_op.create_foreign_key(None, 'user', ['author_id'], ['id'])")
    project.write(PATH, REVISION.format(message="post author key", operation=operation))
    result = project.run("--select", "upgrade")
    assert result.code == 1, result.output
    assert "failed: ValueError: Constraint must have a name" in result.out
    assert "fix: the constraint has no name: autogenerate writes `None`" in result.out
    assert "`MetaData(naming_convention=...)`" in result.out
    assert "wrap the operations in" not in result.out
