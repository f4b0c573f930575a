"""What a run leaves on the server: nothing. Schemas a revision creates in a given database, and
roles and users (server-wide) it creates, go at the end, on success, failure and SIGTERM; roles
that were there before the run stay (issue 17)."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, Project
from servers import Server

COMMENTS = "e9e549eb0d5f"


def _roles(postgres: Server, name: str) -> list[tuple[object, ...]]:
    return postgres.execute(f"SELECT rolname FROM pg_roles WHERE rolname = '{name}'")


def test_schema_and_role_a_revision_makes_are_gone_after_each_run(postgres: Server, project: Project) -> None:
    role, kept = f"reporter_{secrets.token_hex(4)}", f"kept_{secrets.token_hex(4)}"
    postgres.execute(f'CREATE ROLE "{kept}"')
    try:
        project.add_revision("5c4e0001", COMMENTS, f"""
            op.execute("CREATE SCHEMA reporting")
            op.execute("CREATE TABLE reporting.daily (id INTEGER PRIMARY KEY)")
            op.execute('CREATE ROLE "{role}"')
            op.execute('GRANT SELECT ON post TO "{role}"')
            op.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{kept}') "
                       "THEN CREATE ROLE \\"{kept}\\"; END IF; END $$")
            """, f"""
            op.execute('REVOKE SELECT ON post FROM "{role}"')
            op.execute('DROP ROLE "{role}"')
            op.execute("DROP TABLE reporting.daily")
            op.execute("DROP SCHEMA reporting")
            """, doc="reporting")
        with postgres.database() as name:
            for _ in range(2):  # the second run meets what the first one left, if anything
                result = project.run("--db-url", postgres.url + name, "--since", "base")
                assert result.code == 0, result.output
                assert "no problems" in result.out
                assert _roles(postgres, role) == []
                assert postgres.execute("SELECT nspname FROM pg_namespace WHERE nspname = 'reporting'",
                                        database=name) == []
            for _ in range(2):  # also with databases migcheck creates
                result = project.run("--db-url", postgres.url, "--since", "base")
                assert result.code == 0, result.output
                assert _roles(postgres, role) == []
        assert _roles(postgres, kept) == [(kept,)]  # there before the run: not the run's to drop
    finally:
        postgres.execute(f'DROP ROLE IF EXISTS "{role}"', f'DROP ROLE IF EXISTS "{kept}"')


def _users(mysql: Server, name: str) -> list[tuple[object, ...]]:
    return mysql.execute(f"SELECT User FROM mysql.user WHERE User = '{name}'")


def test_user_a_revision_makes_is_gone_after_a_failed_run(mysql: Server, project: Project) -> None:
    user = f"reporter_{secrets.token_hex(4)}"
    project.add_revision("5c4e0001", COMMENTS, f"op.execute(\"CREATE USER '{user}'@'%'\")",
                         f"op.execute(\"DROP USER '{user}'@'%'\")", doc="reporter")
    project.add_revision("5c4e0002", "5c4e0001", "op.execute('UPDATE post SET no_such_column = 1')",
                         doc="broken")
    try:
        for _ in range(2):  # MySQL commits CREATE USER at once: the failed upgrade leaves it
            result = project.run("--db-url", mysql.url)
            assert result.code == 1, result.output
            assert "upgrade to `5c4e0002` (broken) failed" in result.out
            assert "Operation CREATE USER failed" not in result.out
            assert _users(mysql, user) == []
    finally:
        mysql.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_user_a_revision_makes_is_gone_after_sigterm(mysql: Server, project: Project) -> None:
    user = f"reporter_{secrets.token_hex(4)}"
    ready = project.path / "ready"
    project.add_revision("5c4e0001", COMMENTS, f"""
        op.execute("CREATE USER '{user}'@'%'")
        import pathlib, time
        pathlib.Path({str(ready)!r}).write_text('x')
        time.sleep(60)
        """, doc="reporter")
    command = [sys.executable, "-m", "migcheck", "--app=sample_app:app", "--db-url", mysql.url]
    process = subprocess.Popen(command, cwd=project.path, env=project.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the migration never started"
            time.sleep(0.05)
        assert _users(mysql, user) == [(user,)]
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 143, out + err
        assert _users(mysql, user) == []
    finally:
        process.kill()
        mysql.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_two_runs_whose_revisions_create_the_same_role_take_turns(postgres: Server, tmp_path: Path) -> None:
    # Roles are server-wide: without turns, one run's CREATE ROLE fails on the other's role, or the
    # other run drops it under its GRANT.
    role = f"shared_{secrets.token_hex(4)}"
    projects = []
    for number in range(2):
        copy = tmp_path / f"copy{number}"
        ignore = shutil.ignore_patterns("__pycache__", "*.sqlite", "instance")
        shutil.copytree(ROOT / "sample_app", copy / "sample_app", ignore=ignore)
        shutil.copytree(ROOT / "migrations", copy / "migrations", ignore=ignore)
        project = Project(copy)
        project.add_revision("5c4e0002", COMMENTS, f"""
            op.execute('CREATE ROLE "{role}"')
            op.execute("SELECT pg_sleep(1.5)")
            op.execute('GRANT SELECT ON post TO "{role}"')
            """, f"""
            op.execute('REVOKE SELECT ON post FROM "{role}"')
            op.execute('DROP ROLE "{role}"')
            """, doc="shared role")
        projects.append(project)
    try:
        runs = [subprocess.Popen([sys.executable, "-m", "migcheck", "--app=sample_app:app", "--db-url",
                                  postgres.url, "--no-cache", "--select", "upgrade,roundtrip"],
                                 cwd=project.path, env=project.env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for project in projects]
        for run in runs:
            out, err = run.communicate(timeout=120)
            assert run.returncode == 0, out + err
        assert _roles(postgres, role) == []
    finally:
        postgres.execute(f'DROP ROLE IF EXISTS "{role}"')
