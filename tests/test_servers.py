"""--db-url: the checks on real PostgreSQL and MariaDB servers, in scratch databases that go away.

Every run records which databases migcheck pointed the app at (servers.RECORDER), and the test
checks that exactly those are gone afterwards: other tests create their own in parallel.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Project, Result
from servers import RECORDER, Server, drop_cache_databases, recorded

from migcheck import compat

USER_MODEL = "sample_app/models/user.py"
COMMENTS = "e9e549eb0d5f"


def copy_fixture(name: str, tmp_path: Path) -> Project:
    shutil.copytree(ROOT / "tests" / "fixtures" / name, tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    return Project(tmp_path)


def record_module_app(project: Project, relpath: str = "sample_app/__init__.py") -> None:
    project.append(relpath, RECORDER + "\n_record_scratch_databases(app)\n")


def record_factory_app(project: Project, relpath: str) -> None:
    project.edit(relpath, "\n    return app\n", "\n    _record_scratch_databases(app)\n    return app\n")
    project.append(relpath, RECORDER)


def run_on(server: Server, project: Project, *args: str, app: str = "sample_app:app",
           env: dict[str, str] | None = None, db_url: str | None = None) -> Result:
    env = {"SCRATCH_RECORD": str(project.path / "scratch.txt"), **(env or {})}
    return project.run("--db-url", db_url or server.url, *args,
                       app=app, env=env)


def assert_dropped(server: Server, project: Project, binds: tuple[str, ...] = ("default",)) -> None:
    names = recorded(project.path / "scratch.txt")
    assert {name.rsplit("_", 1)[-1] for name in names} == set(binds), names
    assert all(re.fullmatch(r"migcheck_r[0-9a-f]{8}_\w+", name) for name in names), names
    left = set(names) & server.databases()
    assert not left, f"migcheck left its scratch databases behind: {left}"


def test_sample_app_passes_and_leaves_no_database(server: Server, project: Project) -> None:
    record_module_app(project)
    result = run_on(server, project)
    assert result.code == 0, result.output
    assert "no problems" in result.out
    assert "drift: warning" not in result.out  # the SQLite blind spots are not reported on a server
    assert_dropped(server, project)


def test_drift_is_caught_and_databases_dropped(server: Server, project: Project) -> None:
    record_module_app(project)
    project.edit(USER_MODEL, "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    result = project.run(env={
        "MIGCHECK_DATABASE_URL": server.url, "SCRATCH_RECORD": str(project.path / "scratch.txt")})
    assert result.code == 1, result.output
    assert (f"{USER_MODEL}:{project.line_of(USER_MODEL, 'age =')}: drift: column `user.age` is in the "
            "model but no migration creates it") in result.out
    assert_dropped(server, project)


def test_upgrade_failure_names_statement_and_server_error(server: Server, project: Project) -> None:
    record_module_app(project)
    revision = project.revision_file(COMMENTS)
    project.edit(revision, "def upgrade():\n",
                 'def upgrade():\n    op.execute("UPDATE post SET no_such_column = 1")\n')
    result = run_on(server, project)
    assert result.code == 1, result.output
    error = ('UndefinedColumn: column "no_such_column" of relation "post" does not exist'
             if server.name == "postgresql" else "OperationalError: (1054, \"Unknown column 'no_such_column'")
    assert (f"{revision}:{project.line_of(revision, 'no_such_column')}: upgrade: upgrade to `{COMMENTS}` "
            f"(add comments) failed: {error}") in result.out
    assert "    UPDATE post SET no_such_column = 1\n" in result.out
    assert_dropped(server, project)


def test_postgres_transaction_does_not_hide_the_failing_statement(postgres: Server,
                                                                  project: Project) -> None:
    # The migration swallows the error; PostgreSQL then refuses every later statement with "current
    # transaction is aborted", which names an innocent CREATE TABLE. The finding names the real one.
    revision = project.revision_file(COMMENTS)
    project.edit(revision, "def upgrade():\n", "def upgrade():\n    try:\n"
                 "        op.execute(\"UPDATE post SET view_count = 'many'\")\n"
                 "    except Exception:\n        pass\n")
    result = run_on(postgres, project)
    assert result.code == 1, result.output
    assert (f"{revision}:{project.line_of(revision, 'many')}: upgrade: upgrade to `{COMMENTS}` (add "
            "comments) failed: InvalidTextRepresentation: invalid input syntax for type integer: "
            "\"many\" (that error was caught") in result.out
    assert "    UPDATE post SET view_count = 'many'\n" in result.out
    assert "InFailedSqlTransaction" not in result.out
    assert "begin_nested" in result.out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_drops_its_databases(server: Server, project: Project, signum: int) -> None:
    record_module_app(project)
    ready = project.path / "ready"
    revision = project.revision_file(COMMENTS)
    project.edit(revision, "def upgrade():\n",
                 "def upgrade():\n    import pathlib, time\n"
                 f"    pathlib.Path({str(ready)!r}).write_text('x')\n    time.sleep(60)\n")
    command = [sys.executable, "-m", "migcheck", "--app=sample_app:app", "--db-url", server.url]
    process = subprocess.Popen(
        command, cwd=project.path, env=project.env({"SCRATCH_RECORD": str(project.path / "scratch.txt")}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the migration never started"
            time.sleep(0.05)
        assert recorded(project.path / "scratch.txt")[0] in server.databases()  # it exists mid-run
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], out + err
    assert_dropped(server, project)


def test_given_empty_database_is_used_and_emptied(server: Server, project: Project) -> None:
    with server.database() as name:
        result = run_on(server, project, db_url=server.url + name)
        assert result.code == 0, result.output
        assert "no problems" in result.out
        assert server.tables(name) == []
        assert name in server.databases()  # given, so not dropped


def test_given_database_with_tables_is_refused(server: Server, project: Project) -> None:
    with server.database() as name:
        server.execute("CREATE TABLE keep_me (id INTEGER)", database=name)
        result = run_on(server, project, db_url=server.url + name)
        assert result.code == 2, result.output
        assert (f"migcheck: error: --db-url names the database '{name}', which is not empty: it "
                "holds table keep_me.") in result.err
        assert server.tables(name) == ["keep_me"]


def test_given_database_with_other_objects_is_refused(postgres: Server, project: Project) -> None:
    """No tables, but objects that the emptying would drop (or that change the results)."""
    with postgres.database() as name:
        postgres.execute("CREATE SEQUENCE keep_seq", "CREATE TYPE keep_mood AS ENUM ('ok')",
                         "CREATE SCHEMA other", "CREATE DOMAIN other.keep_positive AS integer",
                         "CREATE FUNCTION keep_one() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
                         database=name)
        result = run_on(postgres, project, db_url=postgres.url + name)
        assert result.code == 2, result.output
        assert (f"--db-url names the database '{name}', which is not empty: it holds domain "
                "other.keep_positive, function keep_one, sequence keep_seq, type keep_mood.") in result.err
        left = postgres.execute(
            "SELECT (SELECT count(*) FROM pg_class WHERE relname = 'keep_seq')"
            " + (SELECT count(*) FROM pg_type WHERE typname IN ('keep_mood', 'keep_positive'))"
            " + (SELECT count(*) FROM pg_proc WHERE proname = 'keep_one')", database=name)
        assert left == [(4,)]


LEFTOVERS = """\"\"\"leftovers\"\"\"
from alembic import op

revision = 'ddd444'
down_revision = 'e9e549eb0d5f'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    op.execute("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)")
    op.execute("CREATE FUNCTION answer() RETURNS integer LANGUAGE sql AS 'SELECT 42'")


def downgrade():
    pass
"""


def test_given_database_is_emptied_of_everything_the_run_made(postgres: Server, project: Project) -> None:
    """What the migrations leave (a function, a domain, an extension) goes too, so the database is
    as empty as it was and the next run is not refused; an extension that was there stays."""
    project.write("migrations/versions/ddd444_leftovers.py", LEFTOVERS)
    with postgres.database() as name:
        postgres.execute("CREATE EXTENSION citext", database=name)
        for _ in range(2):
            result = run_on(postgres, project, "--select", "upgrade", db_url=postgres.url + name)
            assert result.code == 0 and "no problems" in result.out, result.output
        extensions = postgres.execute("SELECT extname FROM pg_extension ORDER BY 1", database=name)
        assert extensions == [("citext",), ("plpgsql",)]
        left = postgres.execute("SELECT count(*) FROM pg_proc WHERE proname = 'answer'"
                                " UNION ALL SELECT count(*) FROM pg_type WHERE typname = 'positive'",
                                database=name)
        assert left == [(0,), (0,)]


def test_given_mysql_database_is_emptied_of_routines(mysql: Server, project: Project) -> None:
    project.write("migrations/versions/ddd444_leftovers.py", LEFTOVERS.split("def upgrade")[0] + """
def upgrade():
    op.execute("CREATE FUNCTION answer() RETURNS INTEGER DETERMINISTIC RETURN 42")
    op.execute("CREATE PROCEDURE nothing() BEGIN END")


def downgrade():
    pass
""")
    with mysql.database() as name:
        for _ in range(2):
            result = run_on(mysql, project, "--select", "upgrade", db_url=mysql.url + name)
            assert result.code == 0 and "no problems" in result.out, result.output
        assert mysql.execute("SELECT ROUTINE_NAME FROM information_schema.ROUTINES"
                             f" WHERE ROUTINE_SCHEMA = '{name}'") == []


def test_given_database_with_a_routine_is_refused(mysql: Server, project: Project) -> None:
    with mysql.database() as name:
        mysql.execute("CREATE FUNCTION keep_one() RETURNS INTEGER DETERMINISTIC RETURN 1",
                      database=name)
        result = run_on(mysql, project, db_url=mysql.url + name)
        assert result.code == 2, result.output
        assert "which is not empty: it holds function keep_one." in result.err
        assert mysql.execute("SELECT keep_one()", database=name) == [(1,)]


def test_missing_privilege_says_what_to_grant(server: Server, project: Project) -> None:
    user = f"mc_test_{secrets.token_hex(4)}"
    url = server.with_(username=user)
    if server.name == "postgresql":
        server.execute(f'CREATE ROLE "{user}" LOGIN')
        grant, cleanup = f'ALTER ROLE "{user}" CREATEDB;', f'DROP ROLE "{user}"'
    else:
        server.execute(f"CREATE USER '{user}'@'%'")
        grant = f"GRANT ALL PRIVILEGES ON `migcheck\\_%`.* TO '{user}'@'%';"
        cleanup = f"DROP USER '{user}'@'%'"
    try:
        record_module_app(project)
        result = run_on(server, project, db_url=url)
        assert result.code == 2, result.output
        assert "cannot create the scratch database" in result.err
        assert f"Let the user create databases ({grant})" in result.err
        assert "Traceback" not in result.err
        server.execute(grant)  # exactly what the message says is enough
        result = run_on(server, project, db_url=url)
        assert result.code == 0, result.output
        assert_dropped(server, project)
    finally:
        drop_cache_databases([project.path / ".migcheck-cache"])  # the user owns them
        server.execute(cleanup)


def test_server_guard_refuses_the_other_databases(server: Server, project: Project) -> None:
    record_module_app(project)
    other = server.with_(database="postgres" if server.name == "postgresql" else "mysql")
    project.append("sample_app/__init__.py",
                   f"\nimport sqlalchemy\nsqlalchemy.create_engine({other!r}).connect()\n")
    result = run_on(server, project)
    assert result.code == 2, result.output
    target = "postgres" if server.name == "postgresql" else "mysql"
    assert f"Refused a connection to the {server.name} database '{target}'" in result.err
    assert_dropped(server, project)


def test_one_database_per_bind(server: Server, tmp_path: Path) -> None:
    shop = copy_fixture("multibind", tmp_path)
    record_factory_app(shop, "shop/__init__.py")
    result = run_on(server, shop, app="shop:create_app()")
    assert result.code == 0, result.output
    assert_dropped(server, shop, binds=("default", "audit"))


@pytest.mark.parametrize(("url", "module", "extra", "others"), [
    ("postgresql://postgres@127.0.0.1:5432/", compat.postgresql_driver(), "postgres",
     ("psycopg", "psycopg2", "pg8000")),
    ("mysql://root@127.0.0.1:3306/", "pymysql", "mysql", ("MySQLdb", "mysql")),
])
def test_missing_driver_names_the_extra(project: Project, url: str, module: str, extra: str,
                                        others: tuple[str, ...]) -> None:
    env = project.blocking(*dict.fromkeys((module, *others)))
    result = project.run("--db-url", url, env=env)
    assert result.code == 2, result.output
    assert result.err == (f"migcheck: error: --db-url needs the {module} driver, which is not installed "
                          f"({module} is not installed here): pip install \"migcheck[{extra}]\"\n")


def test_url_without_a_driver_takes_one_the_project_has(server: Server, project: Project) -> None:
    """A project that has psycopg2 (or mysqlclient, mysql-connector) but not migcheck's driver."""
    default = compat.postgresql_driver() if server.name == "postgresql" else "pymysql"
    if server.name == "postgresql" and not compat.SQLALCHEMY_2:
        pytest.skip("before SQLAlchemy 2 psycopg2 is migcheck's own driver, and the next one, pg8000, "
                    "does not work with SQLAlchemy 1.3")
    url = compat.render_url(compat.url_with(compat.make_url(server.url), drivername=server.name),
                            hide_password=False)
    result = project.run("--db-url", url, "--select", "graph,upgrade", env=project.blocking(default))
    assert result.code == 0, result.output


def test_sqlite_url_is_not_a_server(project: Project) -> None:
    result = project.run("--db-url", f"sqlite:///{project.path / 'x.sqlite'}")
    assert result.code == 2, result.output
    assert "give a PostgreSQL or MySQL/MariaDB server URL" in result.err


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:abc/", "mysql://root@[::1/",
                                 "postgresql://postgres@127.0.0.1:99999999999/"])
def test_malformed_url_is_not_a_database_url(project: Project, url: str) -> None:
    result = project.run("--db-url", url)
    assert result.code == 2, result.output
    assert result.err.startswith(f"migcheck: error: --db-url: {url!r} is not a database URL"), result.err


def test_pg_app_needs_postgres_on_sqlite(tmp_path: Path) -> None:
    pg_app = copy_fixture("pg_app", tmp_path)
    revision = pg_app.revision_file("517ee0dd3017")
    result = pg_app.run(app="pg_app:create_app()")
    # Nothing after it can be checked on SQLite: migcheck could not check (exit 2), said once.
    assert result.code == 2, result.output
    at = (f"{revision}:{pg_app.line_of(revision, 'op.create_table')}: upgrade: could not check on SQLite: "
          "revision `517ee0dd3017` uses ")
    if compat.SQLALCHEMY_2:  # renders UUID and JSONB on SQLite; the `::jsonb` cast is what fails
        assert at + "`::jsonb` casts; run with --db-url (SQLite says OperationalError: unrecognized " \
            "token: \":\")" in result.out
        cannot = "`::jsonb` casts"
    else:  # cannot render PostgreSQL's UUID on SQLite at all
        assert at + "UUID; run with --db-url (SQLite says CompileError: (in table 'document', column " \
            "'id')" in result.out
        cannot = "the type UUID"
    assert (f"fix: this revision needs PostgreSQL: SQLite cannot run {cannot}. Run migcheck against a "
            "PostgreSQL server with --db-url") in result.out
    assert len([line for line in result.out.splitlines() if ": upgrade: " in line]) == 1
    assert "drift" not in result.out.split("migcheck:")[0]


def test_pg_app_type_needs_postgres_on_sqlite(tmp_path: Path) -> None:
    pg_app = copy_fixture("pg_app", tmp_path)
    first = pg_app.revision_file("517ee0dd3017")
    pg_app.edit(first, ", server_default=sa.text(\"'{}'::jsonb\")", "")
    # SQLAlchemy < 2 cannot render these on SQLite (nor a function default without parentheses);
    # the test is about the ARRAY in the next revision.
    pg_app.edit(first, "postgresql.UUID(as_uuid=True), server_default=sa.text('gen_random_uuid()')",
                "sa.String(36)")
    pg_app.edit(first, "postgresql.JSONB(astext_type=sa.Text())", "sa.JSON()")
    pg_app.edit(first, ", server_default=sa.text('now()')", "")
    revision = pg_app.revision_file("dd0be5576e27")
    result = pg_app.run(app="pg_app:create_app()")
    assert result.code == 2, result.output
    assert (f"{revision}:{pg_app.line_of(revision, 'with op.batch_alter_table')}: upgrade: could not check "
            "on SQLite: revision `dd0be5576e27` uses ARRAY; run with --db-url") in result.out
    assert re.search(r"can't render element of type (<class '[\w.]+\.)?ARRAY", result.out)  # 1.3: the class
    assert "fix: this revision needs PostgreSQL: SQLite cannot run the type ARRAY." in result.out


def test_pg_app_passes_on_postgres(postgres: Server, tmp_path: Path) -> None:
    pg_app = copy_fixture("pg_app", tmp_path)
    record_factory_app(pg_app, "pg_app/__init__.py")
    result = run_on(postgres, pg_app, app="pg_app:create_app()")
    assert result.code == 0, result.output
    assert "no problems" in result.out
    # No SQLite caveats on PostgreSQL; the warnings are the safety check's, about the head
    # revision's index on a table an older revision created, and the lock its first ALTER of that
    # table was seen to take with no lock_timeout set.
    warnings = sorted(line for line in result.out.splitlines() if ": warning: " in line)
    assert len(warnings) == 2, warnings
    assert ("safety: warning: `add_column('document', 'tags')` takes AccessExclusiveLock on `document` "
            "with no lock_timeout") in warnings[0]
    assert ": safety: warning: creates index `ix_document_body`" in warnings[1]
    assert_dropped(postgres, pg_app)


# A revision that creates `user.role` and `user.last_seen` as the model had them before the edit below.
ROLE_REVISION = '''"""add user role and last seen

Revision ID: 5e1ec7ed0001
Revises: e9e549eb0d5f
"""
from alembic import op
import sqlalchemy as sa

revision = '5e1ec7ed0001'
down_revision = 'e9e549eb0d5f'
branch_labels = None
depends_on = None


def upgrade():
    sa.Enum('reader', 'writer', name='user_role').create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table('user', schema=None) as batch_op:
        # create_constraint=False, the default from SQLAlchemy 1.4 on: 1.3's CHECK would outlive the
        # column in SQLite batch mode and break the downgrade.
        role = sa.Enum('reader', 'writer', name='user_role', create_constraint=False)
        batch_op.add_column(sa.Column('role', role, nullable=True))
        batch_op.add_column(sa.Column('last_seen', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('last_seen')
        batch_op.drop_column('role')
    sa.Enum(name='user_role').drop(op.get_bind(), checkfirst=True)
'''


def _blind_spots(project: Project) -> None:
    """Model changes SQLite cannot see: an Enum member, a time zone, a comment, a CHECK constraint."""
    project.write("migrations/versions/5e1ec7ed0001_add_user_role_and_last_seen.py", ROLE_REVISION)
    project.edit(USER_MODEL, '    __tablename__ = "user"\n', '    __tablename__ = "user"\n'
                 '    __table_args__ = (db.CheckConstraint("length(username) > 2", name="long_enough"),)\n')
    project.edit(USER_MODEL, "    bio = db.Column(db.Text)\n",
                 '    bio = db.Column(db.Text, comment="shown on the profile")\n'
                 '    role = db.Column(db.Enum("reader", "editor", name="user_role"))\n'
                 "    last_seen = db.Column(db.DateTime(timezone=True))\n")


def test_sqlite_blind_spots_are_warnings(project: Project) -> None:
    _blind_spots(project)
    result = project.run()
    assert result.code == 0, result.output
    line = lambda needle: f"{USER_MODEL}:{project.line_of(USER_MODEL, needle)}: drift: warning: "  # noqa: E731
    verify = "so migcheck on SQLite cannot tell whether the migrations match; verify with --db-url on your " \
             "production database"
    expected = [
        line("class User") + "CHECK constraint `long_enough` on `user` (length(username) > 2): "
        "Alembic does not compare CHECK constraints, and SQLite does not run their SQL as your database "
        f"does, {verify}",
        line("bio =") + f"column `user.bio` has a comment: SQLite keeps no comments, {verify}",
        line("role =") + "column `user.role` is an Enum (reader, editor): SQLite stores it as VARCHAR, where "
        f"changed members go unseen, {verify}",
        line("last_seen =") + "column `user.last_seen` is a time-zone-aware DateTime: SQLite has no time "
        f"zone type, {verify}",
    ]
    for message in expected:
        assert result.out.count(message) == 1, (message, result.out)
    assert result.out.count("drift: warning:") == len(expected)
    assert "migcheck: no problems (4 warnings)" in result.out


def test_sqlite_blind_spots_are_checked_on_servers(server: Server, project: Project) -> None:
    _blind_spots(project)
    result = run_on(server, project)
    assert result.code == 1, result.output
    assert "drift: warning" not in result.out
    at = lambda needle: f"{USER_MODEL}:{project.line_of(USER_MODEL, needle)}: drift: "  # noqa: E731
    assert (at("bio =") + "comment of column `user.bio` differs: the migrations give none, the model says "
            "'shown on the profile'") in result.out
    if server.name == "postgresql":
        assert (at("last_seen =") + "type of column `user.last_seen` differs: the migrations give TIMESTAMP "
                "WITHOUT TIME ZONE, the model says TIMESTAMP WITH TIME ZONE") in result.out
    else:  # MySQL has no time zone type, but it compares ENUM members
        assert (at("role =") + "type of column `user.role` differs: the migrations give "
                "ENUM('reader','writer'), the model says ENUM('reader','editor')") in result.out


def test_unreachable_server_is_a_usage_error_without_the_password(project: Project) -> None:
    result = project.run(env={"MIGCHECK_DATABASE_URL": "postgresql://postgres:s3cret@127.0.0.1:1/"})
    assert result.code == 2, result.output
    driver = compat.postgresql_driver()
    assert result.err.startswith("migcheck: error: MIGCHECK_DATABASE_URL: cannot connect to "
                                 f"postgresql+{driver}://postgres:***@127.0.0.1:1/ as postgres: ")
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output


def test_roundtrip_failure_is_caught_and_databases_dropped(server: Server, project: Project) -> None:
    record_module_app(project)
    path = project.replace_downgrade("428a6cc61e6a", "    pass\n")
    result = run_on(server, project, "--select", "roundtrip")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'def downgrade')}: roundtrip: downgrade of `428a6cc61e6a` "
            "leaves column `post.view_count` behind; the same for 1 more: `user.bio`") in result.out
    assert_dropped(server, project)



def test_dropping_an_unnamed_constraint_is_told_to_name_it(server: Server, project: Project) -> None:
    """Autogenerate, without a naming convention, writes `op.drop_constraint(None, ...)` for a
    foreign key the model leaves unnamed (seen in CTFd): SQLAlchemy cannot emit the DROP, and the
    hint says to name it, told the same in every run (no memory addresses)."""
    project.drop_naming_convention()
    path = project.add_revision("d1d100000003", "e9e549eb0d5f",
                                "op.create_foreign_key(None, 'post', 'tag', ['id'], ['id'])",
                                "op.drop_constraint(None, 'post', type_='foreignkey')", "post tag key")
    result = run_on(server, project, "--select", "roundtrip")
    assert result.code == 1, result.output
    line = project.line_of(path, "op.drop_constraint")
    assert f"{path}:{line}: roundtrip: downgrade of `d1d100000003` raises " in result.out
    if server.name == "postgresql":  # MySQL's compiler only asserts that the name is there
        assert ("raises CompileError: Can't emit DROP CONSTRAINT for constraint ForeignKeyConstraint("
                in result.out and "it has no name" in result.out and " at 0x" not in result.out)
    assert "fix: the constraint has no name: autogenerate writes `None`" in result.out

def test_after_a_bad_downgrade_postgresql_goes_back_to_a_savepoint(server: Server, project: Project) -> None:
    # PostgreSQL runs the migrations in one transaction: after each bad downgrade the walk rolls back
    # to the savepoint before the revision, and the first revision's upgrade runs only twice (its
    # round trip). MySQL commits every DDL statement: the scratch database is rebuilt after each.
    runs = project.path / "runs.txt"
    project.edit(project.revision_file("1f5ecceb0b09"), "def upgrade():\n",
                 f"def upgrade():\n    open({str(runs)!r}, 'a').write('run\\n')\n")
    project.replace_downgrade("428a6cc61e6a", "    pass\n")
    comments = project.replace_downgrade("e9e549eb0d5f", "    pass\n")
    result = run_on(server, project, "--select", "roundtrip")
    assert result.code == 1, result.output
    assert "downgrade of `428a6cc61e6a` leaves column `post.view_count` behind" in result.out
    assert (f"{comments}:{project.line_of(comments, 'def downgrade')}: roundtrip: downgrade of "
            "`e9e549eb0d5f` leaves table `comment` behind") in result.out
    assert runs.read_text().count("run") == (2 if server.name == "postgresql" else 4)


@pytest.mark.parametrize("ends_its_transaction", [
    # autocommit_block() commits the migrations' transaction: the savepoint is gone with it, so the
    # walk rebuilds (and must not fail on the lost savepoint, which would abort the transaction).
    "    with op.get_context().autocommit_block():\n        op.execute('SELECT 1')\n",
    # Its own COMMIT and BEGIN, unseen by psycopg2: the savepoint is gone, and the walk must tell the
    # new transaction from the one the savepoint lived in by its id (a start time can repeat).
    "    op.execute('COMMIT; BEGIN')\n",
], ids=["autocommit-block", "commit-and-begin"])
def test_a_revision_that_commits_is_rebuilt_not_rolled_back(postgres: Server, project: Project,
                                                            ends_its_transaction: str) -> None:
    comments = project.revision_file("e9e549eb0d5f")
    project.edit(comments, "def upgrade():\n", "def upgrade():\n" + ends_its_transaction)
    project.replace_downgrade("e9e549eb0d5f", "    pass\n")
    project.add_revision("f3f300000001", "e9e549eb0d5f",
                         "op.add_column('tag', sa.Column('colour', sa.String(8)))", "pass", "tag colour")
    result = run_on(postgres, project, "--select", "upgrade,roundtrip")
    assert result.code == 1, result.output
    assert "downgrade of `e9e549eb0d5f` leaves table `comment` behind" in result.out
    assert "downgrade of `f3f300000001` leaves column `tag.colour` behind" in result.out
    assert "upgrade:" not in result.out and "InFailedSqlTransaction" not in result.output


def test_indexes_mysql_makes_for_foreign_keys_are_not_the_migrations(mysql: Server,
                                                                    project: Project) -> None:
    """MariaDB makes an index for a foreign key with no usable one, and renames it when the key is
    dropped and added again: the round trip must not report it as left behind or dropped."""
    project.add_revision(
        "f1f100000001", "e9e549eb0d5f",
        "op.execute('CREATE TABLE badge (id INTEGER PRIMARY KEY, user_id INTEGER, '\n"
        "           'FOREIGN KEY (user_id) REFERENCES user (id))')",
        "op.drop_table('badge')", "badges")
    project.add_revision(
        "f1f100000002", "f1f100000001",
        "op.execute('ALTER TABLE badge DROP FOREIGN KEY badge_ibfk_1')\n"
        "op.execute('ALTER TABLE badge ADD CONSTRAINT badge_owner FOREIGN KEY (user_id) '\n"
        "           'REFERENCES user (id) ON DELETE CASCADE')",
        "op.execute('ALTER TABLE badge DROP FOREIGN KEY badge_owner')\n"
        "op.execute('ALTER TABLE badge ADD CONSTRAINT badge_ibfk_1 FOREIGN KEY (user_id) '\n"
        "           'REFERENCES user (id)')",
        "badge owner cascade")
    result = run_on(mysql, project, "--select", "upgrade,roundtrip")
    assert result.code == 0, result.output


def test_index_mysql_keeps_after_a_foreign_key_is_dropped_is_not_left_behind(mysql: Server,
                                                                              project: Project) -> None:
    """The upgrade adds a foreign key (MySQL makes an index for it), the downgrade drops the key as
    autogenerate writes it: MySQL keeps its index, which no migration made."""
    project.add_revision("f2f200000001", "e9e549eb0d5f",
                         "op.add_column('user', sa.Column('referrer_id', sa.Integer()))",
                         "op.drop_column('user', 'referrer_id')", "referrer")
    project.add_revision(
        "f2f200000002", "f2f200000001",
        "op.create_foreign_key('fk_user_referrer_id_user', 'user', 'user', ['referrer_id'], ['id'])",
        "op.drop_constraint('fk_user_referrer_id_user', 'user', type_='foreignkey')", "referrer key")
    result = run_on(mysql, project, "--select", "upgrade,roundtrip")
    assert result.code == 0, result.output
