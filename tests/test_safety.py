"""The safety promise: only scratch databases, nothing left behind, whatever the app or env.py does.

The `project` fixture also checks, after every test, that the configured database file and the
instance folder were never made and that the scratch area is gone from TMPDIR.
"""

import hashlib
import signal
import sqlite3

import pytest
from conftest import Project

INIT = "sample_app/__init__.py"

# How env.py looked before Flask-Migrate 2.5.3: it reads the URL from the app's config and builds
# its own engine, so it only stays on the scratch database if the config itself was redirected.
OLD_ENV_PY = '''from __future__ import with_statement

import logging
from logging.config import fileConfig

from sqlalchemy import engine_from_config
from sqlalchemy import pool

from alembic import context

config = context.config
fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')

from flask import current_app
config.set_main_option('sqlalchemy.url',
                       current_app.config.get('SQLALCHEMY_DATABASE_URI'))
target_metadata = current_app.extensions['migrate'].db.metadata


def run_migrations_offline():
    url = config.get_main_option("sqlalchemy.url")
    context.configure(url=url)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    engine = engine_from_config(config.get_section(config.config_ini_section),
                                prefix='sqlalchemy.',
                                poolclass=pool.NullPool)

    connection = engine.connect()
    context.configure(connection=connection,
                      target_metadata=target_metadata,
                      process_revision_directives=process_revision_directives,
                      **current_app.extensions['migrate'].configure_args)

    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.close()

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''


def _in_factory(project: Project, code: str) -> None:
    """Run `code` at the end of create_app(), where real apps connect or create tables."""
    indented = "".join(f"    {line}\n" for line in code.strip().splitlines())
    project.edit(INIT, "    app.register_blueprint(bp)\n", f"    app.register_blueprint(bp)\n{indented}")


def test_existing_database_untouched_when_the_factory_connects_and_creates_tables(project: Project) -> None:
    with sqlite3.connect(project.configured_db) as connection:  # the developer's own database
        connection.execute("CREATE TABLE user (id INTEGER PRIMARY KEY, username TEXT)")
        connection.execute("INSERT INTO user (username) VALUES ('ada')")
    connection.close()
    before = hashlib.sha256(project.configured_db.read_bytes()).hexdigest()
    _in_factory(project, """
with app.app_context():
    with db.engine.connect() as connection:
        connection.execute(db.text("SELECT 1"))
    db.create_all()
""")
    result = project.run()
    assert result.code == 0, result.output
    assert ("upgrade: info: the app created tables in the default database while it loaded (e.g. "
            "db.create_all() in the factory); they went to migcheck's scratch database, which was "
            "emptied before the checks") in result.out
    assert "no problems (1 info)" in result.out
    assert hashlib.sha256(project.configured_db.read_bytes()).hexdigest() == before
    project.configured_db.unlink()  # the fixture checks that nothing else made it


def test_connection_around_flask_sqlalchemy_is_refused(project: Project) -> None:
    _in_factory(project, """
import sqlalchemy
sqlalchemy.create_engine(os.environ["DATABASE_URL"]).connect()
""")
    line = project.line_of(INIT, ".connect()")
    result = project.run()
    assert result.code == 2, result.output
    assert result.err == (
        f"migcheck: error: Refused a connection to the sqlite database '{project.configured_db}': "
        "migcheck only connects to its own scratch databases. Something in the app (or its env.py) "
        "connects to the configured database directly instead of through Flask-SQLAlchemy; make that "
        f"connection lazy or read the URL from db.engine. It happens at {INIT}:{line}.\n")


def test_env_py_connecting_around_flask_sqlalchemy_is_refused(project: Project) -> None:
    project.edit("migrations/env.py", "    connectable = get_engine()\n",
                 "    import os, sqlalchemy\n"
                 "    connectable = sqlalchemy.create_engine(os.environ['DATABASE_URL'])\n")
    result = project.run()
    # The upgrade check catches the error, but a refused connection still ends the run.
    assert result.code == 2, result.output
    assert result.err == (
        f"migcheck: error: Refused a connection to the sqlite database '{project.configured_db}': "
        "migcheck only connects to its own scratch databases. Something in the app (or its env.py) "
        "connects to the configured database directly instead of through Flask-SQLAlchemy; make that "
        "connection lazy or read the URL from db.engine. It happens at migrations/env.py:"
        f"{project.line_of('migrations/env.py', 'connectable.connect()')}.\n")


@pytest.mark.parametrize(("url", "driver"), [
    ("postgresql+pg8000://shop:secret@db.example.com/shop", "pg8000"),
    ("mysql+mysqldb://shop:secret@db.example.com/shop", "MySQLdb"),
])
def test_configured_url_without_its_driver_installed(project: Project, url: str, driver: str) -> None:
    result = project.run(env={"DATABASE_URL": url, **project.blocking(driver)})
    assert result.code == 0, result.output
    assert "no problems" in result.out


def test_old_style_env_py_runs_on_the_scratch_database(project: Project) -> None:
    project.write("migrations/env.py", OLD_ENV_PY)
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    result = project.run()
    # Upgrade and drift ran against the same scratch file: only the new column differs.
    assert result.code == 1, result.output
    assert (f"sample_app/models/user.py:{project.line_of('sample_app/models/user.py', 'age =')}: drift: "
            "column `user.age` is in the model but no migration creates it") in result.out
    assert "1 error " in result.out


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_scratch_area_removed_when_interrupted(project: Project, signum: int, code: int) -> None:
    # The app checks that the scratch area exists in TMPDIR, then interrupts migcheck mid-run.
    _in_factory(project, f"""
import sys
print("scratch:", os.listdir(os.environ["TMPDIR"]), file=sys.stderr, flush=True)
os.kill(os.getpid(), {int(signum)})
""")
    result = project.run()
    assert result.code == code, result.output
    assert "scratch: ['migcheck-" in result.err
    assert not any(project.tmp.iterdir())
