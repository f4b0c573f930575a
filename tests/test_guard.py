"""The driver guard: raw DB-API connections that go around SQLAlchemy are refused, nothing is written.

Each door (a raw connect when the app's module is imported, in the app factory, in env.py, and
through `create_engine(..., creator=...)`) is tried with each driver, in SQLite mode and with
`--db-url`; each test checks that the run stops with exit 2 naming the line, and that the database
the code aimed at was not created or changed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
import sqlalchemy as sa
from conftest import ROOT, Project
from servers import Server, get_server

from migcheck import compat

WRITE = 'c.cursor().execute("CREATE TABLE leaked (id INTEGER)"); c.commit()'


class Driver(NamedTuple):
    module: str  # what the app imports
    server: str | None  # the test server it reaches: "postgresql", "mysql", or None for SQLite
    connect: str  # an expression opening a connection to {db} on {host}:{port} as {user}
    dialect: str  # the SQLAlchemy URL prefix for an engine with creator=


DRIVERS = {
    "sqlite3": Driver("sqlite3", None, 'sqlite3.connect("real.db")', "sqlite://"),
    "sqlite3-uri": Driver("sqlite3", None, 'sqlite3.connect("file:real.db?mode=rwc", uri=True)', "sqlite://"),
    "psycopg": Driver("psycopg", "postgresql",
                      'psycopg.connect("postgresql://{user}@{host}:{port}/{db}")', "postgresql+psycopg://"),
    "psycopg-kwargs": Driver("psycopg", "postgresql",
                             'psycopg.Connection.connect(host="{host}", port={port}, user="{user}", '
                             'dbname="{db}")', "postgresql+psycopg://"),
    "psycopg2": Driver("psycopg2", "postgresql",
                       'psycopg2.connect("dbname={db} host={host} port={port} user={user}")',
                       "postgresql+psycopg2://"),
    "pg8000": Driver("pg8000.dbapi", "postgresql",
                     'pg8000.dbapi.connect(user="{user}", host="{host}", port={port}, database="{db}")',
                     "postgresql+pg8000://"),
    "pymysql": Driver("pymysql", "mysql",
                      'pymysql.connect(host="{host}", port={port}, user="{user}", database="{db}")',
                      "mysql+pymysql://"),
    "MySQLdb": Driver("MySQLdb", "mysql", 'MySQLdb.connect("{host}", "{user}", "", "{db}", {port})',
                      "mysql+mysqldb://"),
    "mysql.connector": Driver("mysql.connector", "mysql",
                              'mysql.connector.connect(host="{host}", port={port}, user="{user}", '
                              'database="{db}")', "mysql+mysqlconnector://"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _not_installed(module: str) -> str:
    if module == "MySQLdb":  # the one driver the test extra cannot bring everywhere
        return ("MySQLdb (mysqlclient) is not installed: it builds against the MariaDB/MySQL client "
                "headers (libmariadb-dev), and noxfile.py installs it only where they are")
    return f"{module} is not installed here: install migcheck's test, postgres and mysql extras"


class Aim(NamedTuple):
    """What the app's code aims at, and how to see afterwards that it was left alone."""

    expression: str  # the connect expression
    untouched: object  # a callable returning True when the target was not created or changed


@contextmanager
def _aim(project: Project, driver: Driver) -> Iterator[Aim]:
    if not _installed(driver.module):
        pytest.skip(_not_installed(driver.module))
    if driver.server is None:
        yield Aim(driver.connect, lambda: not (project.path / "real.db").exists())
        return
    server = get_server(driver.server)
    url = compat.make_url(server.url)
    with server.database() as name:  # an existing database of the developer's, empty
        expression = driver.connect.format(db=name, host=url.host, port=url.port, user=url.username)
        yield Aim(expression, lambda: server.tables(name) == [])


def _code(driver: Driver, expression: str, door: str) -> str:
    """Lines that connect and create a table, at the door."""
    if door == "creator":
        return (f"import {driver.module}, sqlalchemy\n"
                f'c = sqlalchemy.create_engine("{driver.dialect}", creator=lambda: {expression})'
                ".raw_connection()\n"
                f"{WRITE}\n")
    return f"import {driver.module}\nc = {expression}\n{WRITE}\n"


def _place(project: Project, code: str, door: str) -> str:
    """Put the code where the door is; returns the file that holds it."""
    if door in ("import", "creator"):
        project.append("sample_app/extensions.py", "\n" + code)
        return "sample_app/extensions.py"
    indented = "".join(f"    {line}\n" for line in code.splitlines())
    if door == "factory":
        project.edit("sample_app/__init__.py", "    app.register_blueprint(bp)\n",
                     f"    app.register_blueprint(bp)\n{indented}")
        return "sample_app/__init__.py"
    project.edit("migrations/env.py", "    connectable = get_engine()\n",
                 f"{indented}    connectable = get_engine()\n")
    return "migrations/env.py"


def _refused(project: Project, driver_name: str, door: str, *args: str) -> None:
    driver = DRIVERS[driver_name]
    if door == "creator" and driver.dialect.startswith("postgresql+psycopg:") and not compat.SQLALCHEMY_2:
        pytest.skip("SQLAlchemy < 2 has no psycopg 3 dialect to give a creator= to (psycopg2's door "
                    "is tested)")
    with _aim(project, driver) as aim:
        path = _place(project, _code(driver, aim.expression, door), door)
        line = project.line_of(path, "creator=" if door == "creator" else "c = ")
        result = project.run(*args)
        assert aim.untouched(), f"the {driver_name} connection got through: {result.output}"
    assert result.code == 2, result.output
    assert result.out == ""
    assert result.error.startswith("migcheck: error: Refused a connection to the "), result.err
    assert result.err.endswith(f"It happens at {path}:{line}.\n"), result.err


DOORS = ["import", "factory", "env", "creator"]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("driver", ["sqlite3", "psycopg", "pymysql"])
def test_raw_connection_refused_in_sqlite_mode(project: Project, driver: str, door: str) -> None:
    _refused(project, driver, door)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("driver", ["sqlite3", "psycopg", "pymysql"])
def test_raw_connection_refused_with_db_url(project: Project, server: Server, driver: str, door: str) -> None:
    _refused(project, driver, door, "--db-url", server.url)


@pytest.mark.parametrize("driver", ["sqlite3-uri", "psycopg-kwargs", "psycopg2", "pg8000", "MySQLdb",
                                    "mysql.connector"])
def test_other_drivers_and_spellings_refused(project: Project, driver: str) -> None:
    _refused(project, driver, "factory")


@pytest.mark.parametrize("driver", ["psycopg2", "pg8000", "MySQLdb", "mysql.connector"])
def test_other_drivers_refused_through_creator(project: Project, driver: str) -> None:
    _refused(project, driver, "creator")


def test_refused_even_when_the_app_catches_the_error(project: Project) -> None:
    project.append("sample_app/extensions.py", """
import sqlite3
try:
    c = sqlite3.connect("real.db")
    c.execute("CREATE TABLE leaked (id INTEGER)")
except Exception:
    pass
""")
    result = project.run()
    assert not (project.path / "real.db").exists()
    assert result.code == 2, result.output
    assert result.err.endswith(
        f"It happens at sample_app/extensions.py:{project.line_of('sample_app/extensions.py', 'c = ')}.\n")


def test_connect_imported_by_name_is_refused(project: Project) -> None:
    # Imported after the guard started (as every app module is), so it is the guarded function.
    project.append("sample_app/extensions.py", "\nfrom sqlite3 import connect\nconnect('real.db').close()\n")
    result = project.run()
    assert not (project.path / "real.db").exists()
    assert result.code == 2, result.output


def test_private_and_scratch_sqlite_connections_are_allowed(project: Project) -> None:
    _place(project, """
import sqlite3
sqlite3.connect(":memory:").execute("CREATE TABLE t (id INTEGER)")
sqlite3.connect("file:mem?mode=memory", uri=True).close()
with app.app_context():  # the scratch database itself, whichever way it is reached
    sqlite3.connect(db.engine.url.database).execute("SELECT 1")
""", "factory")
    result = project.run()
    assert result.code == 0, result.output
    assert "no problems" in result.out


def test_raw_connection_to_the_scratch_server_database_is_allowed(project: Project, postgres: Server) -> None:
    _place(project, """
import psycopg
with app.app_context():
    url = db.engine.url
    psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database).close()
""", "factory")
    result = project.run("--db-url", postgres.url)
    assert result.code == 0, result.output


def test_the_guard_stays_after_the_run() -> None:
    """A fresh interpreter: after the block (also one that raised), only private SQLite gets through."""
    script = """
import sqlite3
from migcheck.databases import guard
try:
    with guard.guarded(lambda target: True):
        sqlite3.connect("allowed-during.db").close()
        raise RuntimeError
except RuntimeError:
    pass
sqlite3.connect(":memory:").close()
try:
    sqlite3.connect("after.db")
except guard.UnsafeConnection as exc:
    print(type(exc).__name__)
    message = str(exc)
print(guard.late_refusals() == [message])
"""
    with _tmpdir() as where:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=where,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
        assert sorted(os.listdir(where)) == ["allowed-during.db"]
    assert done.stdout.splitlines() == ["UnsafeConnection", "True"]


@contextmanager
def _tmpdir() -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        yield where


def test_a_driver_imported_during_the_run_is_wrapped_then() -> None:
    """A fresh interpreter: pymysql is not imported when the guard starts, and costs nothing until then."""
    script = """
import sys
from migcheck.databases import guard
with guard.guarded(lambda target: False):
    assert "pymysql" not in sys.modules
    import pymysql
    try:
        pymysql.connect(host="127.0.0.1", port=1, database="shop")
    except guard.UnsafeConnection as exc:
        print(exc)
print(pymysql.connections.Connection.__init__.__module__)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    assert done.stdout.splitlines() == [
        "Refused a connection to the mysql database 'shop' on 127.0.0.1:1: migcheck only connects to its "
        "own scratch databases. Something in the app (or its env.py) connects to the configured database "
        "directly instead of through Flask-SQLAlchemy; make that connection lazy or read the URL from "
        "db.engine.",
        "pymysql.connections",
    ]


@pytest.mark.parametrize(("server_name", "scheme", "module"), [
    ("postgresql", "postgresql+psycopg2", "psycopg2"),
    ("postgresql", "postgresql+pg8000", "pg8000"),
    ("mysql", "mysql+mysqldb", "MySQLdb"),
    ("mysql", "mysql+mysqlconnector", "mysql.connector"),
])
def test_scratch_databases_get_through_every_guarded_driver(project: Project, server_name: str, scheme: str,
                                                            module: str) -> None:
    if not _installed(module):
        pytest.skip(_not_installed(module))
    if module == "pg8000" and sa.__version__.startswith("1.3."):
        pytest.skip("SQLAlchemy 1.3's pg8000 dialect decodes column names as bytes, which pg8000 "
                    "releases for Python 3 do not return: no project runs that pair")
    url = compat.url_with(compat.make_url(get_server(server_name).url), drivername=scheme)
    result = project.run("--db-url", compat.render_url(url, hide_password=False))
    assert result.code == 0, result.output
    assert "no problems" in result.out


def test_only_migcheck_itself_reaches_the_admin_database(project: Project, postgres: Server) -> None:
    """migcheck's admin connection goes to `postgres`; the app's own connection there is refused."""
    table = f"leaked_{os.getpid()}_{id(project)}"
    url = compat.make_url(postgres.url)
    _place(project, f"""
import psycopg
c = psycopg.connect(host="{url.host}", port={url.port}, user="{url.username}", dbname="postgres")
c.execute("CREATE TABLE {table} (id INTEGER)"); c.commit()
""", "factory")
    try:
        result = project.run("--db-url", postgres.url)
        assert postgres.execute(f"SELECT to_regclass('{table}') IS NULL") == [(True,)]
    finally:
        postgres.execute(f"DROP TABLE IF EXISTS {table}")
    assert result.code == 2, result.output
    assert result.error.startswith("migcheck: error: Refused a connection to the postgresql database "
                                 f"'postgres' on {url.host}:{url.port}"), result.err


# --- Until the process exits: what the app leaves behind -------------------------------------------

LATE = "after the checks had ended"

# Code that writes to {connect} once the checks are over, and the line of it that connects.
LEFT_BEHIND = {
    "atexit": """
import atexit
def _flush():
    c = {connect}
    {write}
atexit.register(_flush)
""",
    "timer": """
import threading, time
def _later():
    while threading.main_thread().is_alive():  # until main() has returned
        time.sleep(0.02)
    c = {connect}
    {write}
threading.Timer(0, _later).start()
""",
    "daemon-thread": """
import atexit, threading, time
def _later():
    while threading.main_thread().is_alive():
        time.sleep(0.02)
    c = {connect}
    {write}
_thread = threading.Thread(target=_later, daemon=True)
_thread.start()
atexit.register(_thread.join, 10)
""",
}


def _left_behind(kind: str, connect: str, write: str = WRITE) -> str:
    return LEFT_BEHIND[kind].format(connect=connect, write=write)


def _refused_late(result: object, path: str, line: int) -> None:
    assert result.code == 2, result.output  # type: ignore[attr-defined]
    assert "no problems" in result.out  # type: ignore[attr-defined]  # the report came first
    assert result.err.endswith(f"{LATE}: until migcheck exits, nothing but its scratch databases "  # type: ignore[attr-defined]
                               "may be reached. Something the app left behind (an atexit hook, a "
                               "timer or a thread) connects to a database; do not start it when the "
                               f"app is loaded for checks (e.g. in a testing config). It happens at "
                               f"{path}:{line}.\n"), result.err  # type: ignore[attr-defined]
    assert "Traceback" not in result.err  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", sorted(LEFT_BEHIND))
def test_raw_sqlite_connection_after_the_checks_is_refused(project: Project, kind: str) -> None:
    project.append("sample_app/extensions.py", _left_behind(kind, 'sqlite3.connect("prod.db")')
                   .replace("import ", "import sqlite3, ", 1))
    result = project.run()
    assert not (project.path / "prod.db").exists(), result.output
    _refused_late(result, "sample_app/extensions.py", project.line_of("sample_app/extensions.py", "c = "))


def test_module_level_engine_used_at_exit_is_refused(project: Project) -> None:
    project.append("sample_app/extensions.py", """
import sqlalchemy
_engine = sqlalchemy.create_engine("sqlite:///prod.db")
""" + _left_behind("atexit", "_engine.connect()",
                   'c.exec_driver_sql("CREATE TABLE leaked (id INTEGER)"); c.commit()'))
    result = project.run()
    assert not (project.path / "prod.db").exists(), result.output
    _refused_late(result, "sample_app/extensions.py", project.line_of("sample_app/extensions.py", "c = "))


def test_postgresql_engine_used_at_exit_is_refused(project: Project, postgres: Server) -> None:
    url = compat.make_url(postgres.url)
    with postgres.database() as name:
        project.append("sample_app/extensions.py", f"""
import sqlalchemy
_engine = sqlalchemy.create_engine("postgresql+{compat.postgresql_driver()}://{url.username}@{url.host}:{url.port}/{name}")
""" + _left_behind("atexit", "_engine.connect()",
                   'c.exec_driver_sql("CREATE TABLE leaked (id INTEGER)"); c.commit()'))
        result = project.run("--db-url", postgres.url)
        assert postgres.tables(name) == [], result.output
    _refused_late(result, "sample_app/extensions.py", project.line_of("sample_app/extensions.py", "c = "))


def test_atexit_hook_of_a_module_only_the_imports_check_imported_is_refused(project: Project) -> None:
    path = project.write("sample_app/models/forgotten.py", """
import atexit, sqlite3
from sample_app.extensions import db


class Forgotten(db.Model):
    id = db.Column(db.Integer, primary_key=True)

""" + _left_behind("atexit", 'sqlite3.connect("prod.db")').replace("import atexit\n", ""))
    relpath = str(path.relative_to(project.path))
    result = project.run("--select", "imports")
    assert not (project.path / "prod.db").exists(), result.output
    assert result.code == 2, result.output
    assert "imports-model-not-imported" in result.out or "Forgotten" in result.out, result.out
    assert result.err.endswith(f"It happens at {relpath}:{project.line_of(relpath, 'c = ')}.\n"), result.err


def test_atexit_connection_refused_under_flask_migcheck(project: Project) -> None:
    project.append("sample_app/extensions.py", _left_behind("atexit", 'sqlite3.connect("prod.db")')
                   .replace("import ", "import sqlite3, ", 1))
    done = subprocess.run([str(Path(sys.executable).parent / "flask"), "migcheck"], cwd=project.path,
                          env=project.env({"FLASK_APP": "sample_app:app"}), capture_output=True,
                          text=True, timeout=120)
    assert not (project.path / "prod.db").exists(), done.stdout + done.stderr
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.endswith(f"It happens at sample_app/extensions.py:"
                                f"{project.line_of('sample_app/extensions.py', 'c = ')}.\n"), done.stderr


@pytest.mark.parametrize("door", [
    'del sys.modules["sqlite3"], sys.modules["sqlite3.dbapi2"]\n'
    'import sqlite3\nc = sqlite3.connect("prod.db")',
    'import _sqlite3\nc = _sqlite3.connect("prod.db")',
    'c = sqlite3.Connection("prod.db")',
])
def test_sqlite_below_the_module_is_refused(project: Project, door: str) -> None:
    """The `sqlite3.connect` audit event is raised by the C code: no Python-level way around it."""
    project.append("sample_app/extensions.py", f"\nimport sqlite3, sys\n{door}\n{WRITE}\n")
    result = project.run()
    assert not (project.path / "prod.db").exists(), result.output
    assert result.code == 2, result.output
    assert result.err.endswith(f"It happens at sample_app/extensions.py:"
                               f"{project.line_of('sample_app/extensions.py', 'c = ')}.\n"), result.err


def test_driver_imported_again_is_guarded_again(project: Project, postgres: Server) -> None:
    url = compat.make_url(postgres.url)
    with postgres.database() as name:
        project.append("sample_app/extensions.py", f"""
import sys
import psycopg  # wrapped when imported
for _name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
    del sys.modules[_name]
import psycopg
c = psycopg.connect("postgresql://{url.username}@{url.host}:{url.port}/{name}")
{WRITE}
""")
        result = project.run()
        assert postgres.tables(name) == [], result.output
    assert result.code == 2, result.output
    assert result.error.startswith("migcheck: error: Refused a connection to the postgresql database"), \
        result.err


def test_refusal_in_a_forked_child_fails_the_parent(project: Project) -> None:
    _place(project, """
import os as os_, sqlite3
child = os_.fork()
if child == 0:
    try:
        c = sqlite3.connect("prod.db")
        c.execute("CREATE TABLE leaked (id INTEGER)")
    except Exception:
        pass
    os_._exit(0)
os_.waitpid(child, 0)
""", "factory")
    result = project.run()
    assert not (project.path / "prod.db").exists(), result.output
    assert result.code == 2, result.output
    assert result.error.startswith("migcheck: error: Refused a connection to the sqlite database 'prod.db'")
    assert result.err.endswith(f"It happens at sample_app/__init__.py:"
                               f"{project.line_of('sample_app/__init__.py', 'c = ')}.\n"), result.err


def test_dblink_to_another_database_is_refused(project: Project, postgres: Server) -> None:
    """A trigger that copies the data check's generated rows to another database with dblink."""
    with postgres.database() as other:
        path = project.add_revision("d47a00000001", "e9e549eb0d5f", f"""
op.execute("CREATE EXTENSION IF NOT EXISTS dblink")
op.execute(\"\"\"CREATE FUNCTION copy_out() RETURNS trigger AS $$ BEGIN
  PERFORM dblink_exec('dbname={other}', 'CREATE TABLE IF NOT EXISTS leaked (id integer)');
  RETURN NEW; END $$ LANGUAGE plpgsql\"\"\")
op.execute("CREATE TRIGGER copy_out AFTER INSERT OR UPDATE ON post FOR EACH ROW EXECUTE FUNCTION copy_out()")
op.execute("UPDATE post SET title = title")
""", "op.execute('DROP TRIGGER copy_out ON post'); op.execute('DROP FUNCTION copy_out()')")
        result = project.run("--db-url", postgres.url)
        assert postgres.tables(other) == [], result.output
    assert result.code == 2, result.output
    assert result.error.startswith("migcheck: error: Refused CREATE EXTENSION dblink on the scratch "
                                 "database"), result.err
    assert result.err.endswith(f"It happens at {path}:{project.line_of(path, 'dblink')}.\n"), result.err


def test_given_database_with_dblink_is_refused(project: Project, postgres: Server) -> None:
    with postgres.database() as given:
        postgres.execute("CREATE EXTENSION dblink", database=given)
        result = project.run("--db-url", postgres.with_(database=given))
    assert result.code == 2, result.output
    assert result.err == (f"migcheck: error: --db-url names the database {given!r}, which has the "
                          "extension dblink: it connects from the server to other databases, where "
                          "migcheck cannot see what the migrations (and the data check's generated rows) "
                          "do. Give a database without it, or a URL without a database name.\n")
