"""The server cache: a --db-url run on PostgreSQL or MariaDB resumes from copies an earlier run kept
(template databases on PostgreSQL), never trusts one that vanished, and never lets two runs (or the
app) use one at once."""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, Result
from servers import Server, cache_databases

BIO = "428a6cc61e6a"
HEAD = "e9e549eb0d5f"
FROM_CACHE = "3 revisions (3 from cache)"
LEAVES = f"downgrade of `{BIO}` leaves column `post.view_count` behind"


@pytest.fixture(autouse=True)
def _not_while_clearing(request: pytest.FixtureRequest) -> Iterator[None]:
    """--clear-cache drops every cache database on the server: the other tests here, which count
    on theirs, do not run meanwhile (in other xdist workers)."""
    clears = request.node.originalname == test_clear_cache_drops_the_cache_databases.__name__
    with open(Path(tempfile.gettempdir()) / "migcheck-test-server-cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if clears else fcntl.LOCK_SH)
        yield


def _run(server: Server, project: Project, *args: str, app: str | None = "sample_app:app") -> Result:
    return project.run("--db-url", server.url, *args, app=app)


def _kept(project: Project) -> list[str]:
    return cache_databases([project.path / ".migcheck-cache"])


def _comparable(result: Result) -> dict[str, object]:
    return {**json.loads(result.out), "seconds": 0, "cached": 0}


def test_warm_run_restores_with_the_same_findings(server: Server, project: Project) -> None:
    project.replace_downgrade(BIO, "    pass\n")
    cold = _run(server, project, "--format", "json")
    assert cold.code == 1 and json.loads(cold.out)["cached"] == 0, cold.output
    [name] = _kept(project)
    assert re.fullmatch(r"migcheck_c[0-9a-f]{12}_default", name) and name in server.databases()
    warm = _run(server, project, "--format", "json")
    assert warm.code == 1 and json.loads(warm.out)["cached"] == 3, warm.output
    assert _comparable(warm) == _comparable(cold)
    # a model edit (no migration changed) is caught on the restored database
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    drifted = _run(server, project)
    assert drifted.code == 1 and FROM_CACHE in drifted.out, drifted.output
    assert "column `user.age` is in the model but no migration creates it" in drifted.out


def test_an_edited_revision_invalidates_the_entry(server: Server, project: Project) -> None:
    assert _run(server, project).code == 0
    project.replace_downgrade(BIO, "    pass\n")
    result = _run(server, project)
    assert result.code == 1 and "from cache" not in result.out, result.output
    assert LEAVES in result.out


def test_two_cache_directories_keep_databases_of_their_own(postgres: Server, project: Project) -> None:
    """Two copies of a project with caches of their own (two CI jobs on one server): each one's
    eviction drops only its own entries, never the other's."""
    other = project.path / "other" / ".migcheck-cache"  # dropped after the test, as ours is
    assert _run(postgres, project).code == 0
    assert project.run("--db-url", postgres.url, env={"MIGCHECK_CACHE_DIR": str(other)}).code == 0
    [ours], [theirs] = _kept(project), cache_databases([other])
    assert ours != theirs and {ours, theirs} <= postgres.databases()


def test_a_vanished_cache_database_is_not_trusted(server: Server, project: Project) -> None:
    assert _run(server, project).code == 0
    [name] = _kept(project)
    server.execute(f"DROP DATABASE {server.quote(name)}")
    result = _run(server, project)
    assert result.code == 0 and "from cache" not in result.out, result.output
    assert _kept(project) == [name] and name in server.databases()  # made again by this run


def test_two_concurrent_runs_both_succeed(server: Server, project: Project) -> None:
    project.replace_downgrade(BIO, "    pass\n")

    def both() -> list[Result]:
        command = [sys.executable, "-m", "migcheck", "--app=sample_app:app", "--db-url", server.url]
        runs = [subprocess.Popen(command, cwd=project.path, env=project.env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        return [Result(run.wait(120), *run.communicate()) for run in runs]

    for result in both():  # both cold, both keep the same entry
        assert result.code == 1 and LEAVES in result.out, result.output
    for result in both():  # one after the other on the entry, or cold: never both at once
        assert result.code == 1 and LEAVES in result.out, result.output
    assert len(_kept(project)) == 1


def test_the_app_cannot_connect_to_a_cache_database(server: Server, project: Project) -> None:
    assert _run(server, project).code == 0
    [name] = _kept(project)
    project.append("sample_app/__init__.py", "\nimport sqlalchemy\nsqlalchemy.create_engine("
                   f"{server.with_(database=name)!r}).connect()\n")
    result = _run(server, project)
    assert result.code == 2, result.output
    assert f"Refused a connection to the {server.name} database '{name}'" in result.err
    assert name in server.databases()


def test_eviction_keeps_at_most_three_entries(server: Server, project: Project) -> None:
    seen: list[str] = []
    for number in range(4):  # four histories: the head revision edited each time
        project.append(project.revision_file(HEAD), f"# edit {number}\n")
        assert _run(server, project).code == 0
        seen += [name for name in _kept(project) if name not in seen]
    assert len(seen) == 4
    assert set(_kept(project)) == set(seen[1:]) and set(seen[1:]) <= server.databases()
    assert seen[0] not in server.databases()  # the least recently used


def test_a_cache_database_unused_for_long_is_dropped(server: Server, project: Project) -> None:
    assert _run(server, project).code == 0
    [old] = _kept(project)
    comment = "'migcheck cache, last used at 1'"
    server.execute(f"COMMENT ON DATABASE {server.quote(old)} IS {comment}" if server.name == "postgresql"
                   else f"ALTER DATABASE {server.quote(old)} COMMENT {comment}")
    project.append(project.revision_file(HEAD), "# edited\n")
    assert _run(server, project).code == 0  # keeps a new entry, which evicts the old
    assert old not in server.databases()


def test_clear_cache_drops_the_cache_databases(server: Server, project: Project) -> None:
    assert _run(server, project).code == 0
    [name] = _kept(project)
    cleared = _run(server, project, "--clear-cache", app=None)
    assert cleared.code == 0, cleared.output
    assert f"removed database {name} on" in cleared.out
    assert f"removed {project.path / '.migcheck-cache'}" in cleared.out
    assert name not in server.databases() and not (project.path / ".migcheck-cache").exists()
    again = _run(server, project, "--clear-cache", app=None)
    assert again.code == 0 and "no cache to remove" in again.out, again.output


def test_mariadb_keeps_no_database_holding_a_view(mysql: Server, project: Project) -> None:
    # A view's definition names its database: a copy of the tables would not reproduce it.
    project.add_revision("aaa111", HEAD, "op.execute('CREATE VIEW post_titles AS SELECT title FROM post')",
                         "op.execute('DROP VIEW post_titles')")
    for _ in range(2):
        result = _run(mysql, project)
        assert result.code == 0 and "from cache" not in result.out, result.output
    assert _kept(project) == []


def test_clear_cache_on_an_unreachable_server_says_so(project: Project) -> None:
    result = project.run("--clear-cache", "--db-url", "postgresql://postgres@127.0.0.1:1/", app=None)
    assert result.code == 2, result.output
    assert "--db-url: cannot connect to postgresql" in result.err and "127.0.0.1:1/" in result.err


def test_the_killed_run_reclaim_never_drops_a_cache_database(postgres: Server, project: Project) -> None:
    kept = "migcheck_c0123456789ab_default"
    postgres.execute(f'CREATE DATABASE "{kept}"',  # used now: no other test's run evicts it
                     f"COMMENT ON DATABASE \"{kept}\" IS 'migcheck cache, last used at {int(time.time())}'")
    try:
        assert _run(postgres, project, "--no-cache").code == 0  # --no-cache: no eviction either
        assert kept in postgres.databases()
    finally:
        postgres.execute(f'DROP DATABASE IF EXISTS "{kept}"')


def test_a_mariadb_copy_has_the_same_tables_and_rows(mysql: Server) -> None:
    """What restoring an entry gives on MariaDB: every table as SHOW CREATE TABLE shows it (foreign
    keys, generated columns, checks, the AUTO_INCREMENT counter) and every row, a 0 id included."""
    from migcheck.databases import templates

    source, target = "migcheck_test_copy_source", "migcheck_test_copy_target"
    mysql.execute(*(f"DROP DATABASE IF EXISTS {name}" for name in (source, target)),
                  f"CREATE DATABASE {source}")
    try:
        mysql.execute(
            "CREATE TABLE author (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL,"
            " shout VARCHAR(40) AS (UPPER(name)) VIRTUAL, CHECK (name <> ''))",
            "CREATE TABLE book (id INT AUTO_INCREMENT PRIMARY KEY, author_id INT NOT NULL,"
            " CONSTRAINT fk_book_author FOREIGN KEY (author_id) REFERENCES author (id) ON DELETE CASCADE)",
            "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
            "INSERT INTO author (id, name) VALUES (0, 'zero'), (7, 'seven')",
            "INSERT INTO book (author_id) VALUES (0), (7), (7)", database=source)
        with mysql.connect() as connection:
            templates._copy(connection, source, target)  # type: ignore[arg-type]

        def described(database: str) -> list[object]:
            return [mysql.execute(f"SHOW CREATE TABLE {table}", database=database)
                    + mysql.execute(f"SELECT * FROM {table} ORDER BY id", database=database)
                    for table in ("author", "book")]

        assert described(target) == described(source)
        assert mysql.execute("SELECT COUNT(*) FROM author WHERE id = 0", database=target) == [(1,)]
    finally:
        mysql.execute(*(f"DROP DATABASE IF EXISTS {name}" for name in (source, target)))
