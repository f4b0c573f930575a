"""Faults that are not the user's: a full disk, no memory, a lost server connection, a clock that jumps,
runs killed with SIGKILL. None of them is reported as the user's revision failing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Project
from servers import Server

HEAD = "e9e549eb0d5f"


@contextmanager
def _small_filesystem(where: Path, size: str) -> Iterator[None]:
    """A tiny tmpfs at `where` (root only), for the run's TMPDIR."""
    where.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_full_disk_under_the_scratch_area_is_not_the_revisions_fault(project: Project) -> None:
    path = project.add_revision("f00d00000001", HEAD, """
op.execute("CREATE TABLE filler (data BLOB)")
op.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
           "INSERT INTO filler SELECT randomblob(1000) FROM n")
op.execute("DROP TABLE filler")
""")
    with _small_filesystem(project.tmp, "1m"):
        result = project.run("--no-cache")
    assert result.code == 2, result.output
    assert "upgrade-failed" not in result.output and f"{path}:" not in result.out
    assert result.error.startswith("migcheck: error: could not check: the disk under migcheck's scratch "
                                 f"databases ({project.tmp}) is full"), result.err
    assert "database or disk is full" in result.err
    assert "not a problem of your migrations" in result.err


def test_out_of_memory_is_not_the_revisions_fault(project: Project) -> None:
    project.add_revision("f00d00000002", HEAD, "bytearray(1 << 50)  # a petabyte")
    result = project.run("--no-cache")
    assert result.code == 2, result.output
    assert result.error.startswith("migcheck: error: could not check: out of memory"), result.err
    assert "MemoryError" in result.err


def test_lost_server_connection_is_not_the_revisions_fault(project: Project, postgres: Server) -> None:
    project.add_revision("f00d00000003", HEAD, 'op.execute("SELECT pg_terminate_backend(pg_backend_pid())")')
    result = project.run("--db-url", postgres.url)
    assert result.code == 2, result.output
    assert result.error.startswith("migcheck: error: could not check: the connection to the postgresql "
                                 "server was lost"), result.err


def test_cache_entries_dated_in_the_future_do_not_stop_the_cache(project: Project) -> None:
    # the round trip alone: the data check's scope (the head revision) moves with a new revision
    assert project.run("--select", "roundtrip").code == 0
    cache = project.path / ".migcheck-cache"
    [entry] = [p for p in cache.glob("*/*") if p.is_dir()]
    future = time.time() + 10 * 365 * 24 * 3600  # a clock that was wrong, or jumped back since
    for name in ("a" * 20, "b" * 20, "c" * 20, entry.name):  # more than KEEP leaves room for
        if name != entry.name:
            shutil.copytree(entry, entry.parent / name)
        os.utime(entry.parent / name, (future, future))
    project.add_revision("f00d00000004", HEAD, "op.create_table('extra', sa.Column('id', sa.Integer, "
                        "primary_key=True))", "op.drop_table('extra')")
    project.append("sample_app/models/user.py", "\n\nclass Extra(db.Model):\n"
                   "    __tablename__ = 'extra'\n    id = db.Column(db.Integer, primary_key=True)\n")
    walked = project.run("--select", "roundtrip")
    assert walked.code == 0 and "4 revisions (3 from cache)" in walked.out, walked.output
    warm = project.run("--select", "roundtrip")
    assert warm.code == 0 and "4 revisions (4 from cache)" in warm.out, warm.output


def test_scratch_directories_of_killed_runs_are_removed(project: Project) -> None:
    import fcntl

    project.tmp.mkdir(exist_ok=True)
    dead = project.tmp / "migcheck-killed1"  # its run died: nobody holds its lock
    dead.mkdir()
    (dead / "owner.lock").write_text("")
    (dead / "default.sqlite").write_bytes(b"SQLite format 3\0")
    alive = project.tmp / "migcheck-running"  # a run that is still going (this test holds its lock)
    alive.mkdir()
    (alive / "owner.lock").write_text("")
    other = project.tmp / "migcheck-notours"  # no lock: made by something else, or a moment ago
    other.mkdir()
    held = os.open(alive / "owner.lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        result = project.run()
        assert result.code == 0, result.output
        assert not dead.exists()
        assert alive.exists() and other.exists()
        assert (f"migcheck: removed 1 scratch directory that runs killed before they could clean up "
                f"left behind: {dead}\n") in result.err
    finally:
        os.close(held)
        shutil.rmtree(alive)
        shutil.rmtree(other)


def test_scratch_databases_of_killed_runs_are_dropped(project: Project, server: Server) -> None:
    import secrets

    import sqlalchemy as sa

    token = secrets.token_hex(4)
    dead = f"migcheck_r{token}_default"
    old_style = f"migcheck_{secrets.token_hex(4)}_default"  # an older migcheck's: no lock tells
    server.execute(f"CREATE DATABASE {server.quote(dead)}", f"CREATE DATABASE {server.quote(old_style)}")
    alive_token = secrets.token_hex(4)
    alive = f"migcheck_r{alive_token}_default"
    server.execute(f"CREATE DATABASE {server.quote(alive)}")
    try:
        with server.connect() as holder:  # the lock of a run that is still going
            number = int(alive_token, 16)
            lock = (sa.text("SELECT pg_advisory_lock(:c, :o)"), {"c": 0x6D63, "o": number - (1 << 32)
                                                                  if number >= 1 << 31 else number}) \
                if server.name == "postgresql" else \
                (sa.text("SELECT GET_LOCK(:n, 0)"), {"n": f"migcheck_r{alive_token}"})
            holder.execute(*lock)  # type: ignore[attr-defined]
            result = project.run("--db-url", server.url)
        assert result.code == 0, result.output
        databases = server.databases()
        assert dead not in databases
        assert alive in databases and old_style in databases
        assert alive not in result.err and old_style not in result.err
        if dead in result.err:  # else a run in parallel (another test) dropped it first
            assert "scratch database(s) that runs killed before they could clean up left on " in result.err
    finally:
        for name in (dead, alive, old_style):
            server.execute(f"DROP DATABASE IF EXISTS {server.quote(name)}")


def test_connection_lost_while_migcheck_reads_the_database_is_not_its_bug(project: Project,
                                                                          postgres: Server) -> None:
    # After alembic records the revision, another session ends the migrations' connection: the next
    # statement is migcheck's own (the round trip's snapshot), which then fails.
    project.add_revision("f00d00000004", HEAD, """
        connection = op.get_bind()
        pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()

        ended = []

        def end_it(conn, cursor, statement, parameters, context, executemany):
            if "alembic_version" in statement and not ended:
                ended.append(pid)
                with connection.engine.connect() as other:
                    other.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})

        sa.event.listen(connection, "after_cursor_execute", end_it)
        """)
    result = project.run("--db-url", postgres.url, "--select", "roundtrip")
    assert result.code == 2, result.output
    assert "internal error" not in result.err, result.err
    assert ("migcheck: error: could not check: the connection to the postgresql server was lost "
            "(OperationalError: ") in result.err, result.err
