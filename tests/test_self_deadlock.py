"""A revision that waits for a lock its own migration holds (the app's `db.session` reading a table the
migration altered) would hang `flask db upgrade` forever: on PostgreSQL migcheck cuts the wait short
and reports it at the revision's line; a signal ends a run whose revision waits in the driver.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

from conftest import Project
from servers import Server

from migcheck import compat

HEAD = "e9e549eb0d5f"
NEW = "5afe00000001"
READ = """\
from sample_app.extensions import db
op.add_column('post', sa.Column('score', sa.Integer(), nullable=True))
count = {read}.execute(sa.text('SELECT count(*) FROM post')).scalar()  # the read
"""


def upgrade_findings(project: Project, *args: str) -> tuple[int, list[dict[str, object]], float]:
    """The exit code, the upgrade check's findings and the seconds the run took. The safety check runs
    the new revision in a transaction of its own, as a deploy does (from base, in the walk's one
    transaction, `post` would not exist yet for the app's session)."""
    started = time.monotonic()
    result = project.run("--format", "json", "--select", "upgrade,safety", *args, timeout=60)
    took = time.monotonic() - started
    assert result.code in (0, 1), result.output
    return result.code, [f for f in json.loads(result.out)["findings"] if f["check"] == "upgrade"], took


def test_read_through_the_apps_session_after_an_alter_is_a_self_deadlock(
        project: Project, postgres: Server) -> None:
    path = project.add_revision(NEW, HEAD, READ.format(read="db.session"), doc="score")
    code, findings, took = upgrade_findings(project, "--db-url", postgres.url)
    assert code == 1 and took < 30, (took, findings)
    [finding] = findings
    assert finding["rule"] == "upgrade-self-deadlock" and finding["severity"] == "error", finding
    assert (finding["path"], finding["line"]) == (path, project.line_of(path, "# the read")), finding
    assert "AccessShareLock on table post" in finding["message"], finding
    assert "`SELECT count(*) FROM post`" in finding["message"], finding
    assert "ALTER TABLE post ADD COLUMN score INTEGER" in finding["message"], finding
    assert "op.get_bind()" in finding["hint"], finding


def test_read_through_the_apps_engine_is_one_too(project: Project, postgres: Server) -> None:
    path = project.add_revision(NEW, HEAD, READ.format(read="db.engine.connect()"), doc="score")
    code, findings, _ = upgrade_findings(project, "--db-url", postgres.url)
    assert code == 1 and [(f["rule"], f["line"]) for f in findings] == [
        ("upgrade-self-deadlock", project.line_of(path, "# the read"))], findings


def test_a_downgrade_that_waits_for_itself_is_the_round_trips_finding(
        project: Project, postgres: Server) -> None:
    path = project.add_revision(NEW, HEAD, "op.add_column('post', sa.Column('score', sa.Integer()))", """
        from sample_app.extensions import db
        op.drop_column('post', 'score')
        db.session.execute(sa.text('SELECT count(*) FROM post'))  # the read
        """, doc="score")
    result = project.run("--format", "json", "--select", "upgrade,roundtrip,safety", "--db-url",
                         postgres.url, timeout=60)
    assert result.code == 1, result.output
    [finding] = [f for f in json.loads(result.out)["findings"] if f["severity"] == "error"]
    assert (finding["rule"], finding["path"], finding["line"]) == (
        "roundtrip-downgrade-failed", path, project.line_of(path, "# the read")), finding
    assert finding["message"].startswith(f"downgrade of `{NEW}` waits for itself"), finding


def test_read_through_the_migrations_connection_is_clean(project: Project, postgres: Server) -> None:
    project.add_revision(NEW, HEAD, READ.format(read="op.get_bind()"), doc="score")
    assert upgrade_findings(project, "--db-url", postgres.url)[:2] == (0, [])


def test_a_lock_another_session_holds_is_waited_for(project: Project, postgres: Server) -> None:
    """A session the run did not open holds the lock for longer than the watchdog's grace: not the
    revision's fault, so its query waits until the lock is released, and the run is clean."""
    ready, locked = project.path / "ready", project.path / "locked"
    project.add_revision(NEW, HEAD, f"""
        import pathlib, time
        pathlib.Path({str(ready)!r}).write_text(op.get_bind().engine.url.database)
        while not pathlib.Path({str(locked)!r}).exists():
            time.sleep(0.05)
        op.execute("SELECT count(*) FROM post")
        """, doc="waits")

    def hold_the_lock() -> None:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        with postgres.connect(ready.read_text()) as connection:
            compat.exec_sql(connection, "BEGIN")
            compat.exec_sql(connection, "LOCK TABLE post IN ACCESS EXCLUSIVE MODE")
            locked.write_text("x")
            time.sleep(3)
            compat.exec_sql(connection, "COMMIT")

    other = threading.Thread(target=hold_the_lock)
    other.start()
    try:
        code, findings, took = upgrade_findings(project, "--db-url", postgres.url)
    finally:
        locked.write_text("x")
        other.join()
    assert (code, findings) == (0, []) and took > 3


def test_mariadb_commits_the_alter_before_the_read(project: Project, mysql: Server) -> None:
    """MySQL/MariaDB commit each ALTER TABLE by themselves: the app's session reads, and no lock waits."""
    project.add_revision(NEW, HEAD, READ.format(read="db.session"), doc="score")
    assert upgrade_findings(project, "--db-url", mysql.url)[:2] == (0, [])


def test_sqlite_is_unaffected(project: Project) -> None:
    """SQLite's migration holds no lock between statements (pysqlite starts no transaction for DDL)."""
    project.add_revision(NEW, HEAD, READ.format(read="db.session"), doc="score")
    assert upgrade_findings(project)[:2] == (0, [])


def test_sigterm_while_the_driver_waits_ends_the_run_and_drops_its_database(
        project: Project, postgres: Server) -> None:
    """psycopg2 waits in C, where no signal handler runs: the watchdog cancels the query."""
    ready = project.path / "ready"
    project.add_revision(NEW, HEAD, f"""
        import pathlib
        pathlib.Path({str(ready)!r}).write_text(op.get_bind().engine.url.database)
        op.execute("SELECT pg_sleep(600)")
        """, doc="slow")
    command = [sys.executable, "-m", "migcheck", "--app=sample_app:app", "--select", "upgrade",
               "--db-url", postgres.url]
    process = subprocess.Popen(command, cwd=project.path, env=project.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the migration never started"
            time.sleep(0.05)
        time.sleep(0.5)  # in pg_sleep by now
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = process.communicate(timeout=30)
        assert process.returncode == 143 and time.monotonic() - started < 10, out + err
        assert ready.read_text() not in postgres.databases()
    finally:
        process.kill()
