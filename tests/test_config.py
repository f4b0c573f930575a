"""[tool.migcheck] in pyproject.toml, and suppression: ignores, inline comments, the baseline."""

from __future__ import annotations

import json

import pytest
from conftest import Project

USER = "sample_app/models/user.py"
BIO = "    bio = db.Column(db.Text)\n"
HEAD = "e9e549eb0d5f"
CORE = ("--select", "graph,upgrade,drift")  # the round trip adds nothing here but time

LEGACY = '''"""A table managed outside the models (filled by a nightly job).

Revision ID: 1e9ac0ffee01
Revises: e9e549eb0d5f
"""
{top}from alembic import op
import sqlalchemy as sa

revision = "1e9ac0ffee01"
down_revision = "e9e549eb0d5f"
branch_labels = None
depends_on = None
{below}

def upgrade():
    op.create_table("legacy_audit", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("note", sa.Text()))


def downgrade():
    op.drop_table("legacy_audit")
'''
LEGACY_FILE = "migrations/versions/1e9ac0ffee01_legacy_audit.py"


def config(project: Project, body: str, where: str = ".") -> None:
    project.write(f"{where}/pyproject.toml", f"[project]\nname = 'x'\n\n[tool.migcheck]\n{body}\n")


def add_legacy_table(project: Project, top: str = "", below: str = "") -> None:
    project.write(LEGACY_FILE, LEGACY.format(top=top, below=below))


def add_columns(project: Project, *lines: str) -> None:
    project.edit(USER, BIO, BIO + "".join(f"    {line}\n" for line in lines))


# --- [tool.migcheck] ----------------------------------------------------------------------

def test_config_is_found_walking_up_and_cli_flags_override_it(project: Project) -> None:
    # A repository with the app in backend/; migcheck runs from backend/.
    (project.path / ".git").mkdir()
    backend = project.path / "backend"
    backend.mkdir()
    for name in ("sample_app", "migrations"):
        (project.path / name).rename(backend / name)
    project.write("backend/pyproject.toml", "[tool.ruff]\nline-length = 100\n")  # not ours: skipped
    # Paths in the config are relative to the config file, not to where migcheck runs.
    config(project, 'app = "sample_app:app"\ndirectory = "backend/migrations"\n'
                    'select = ["graph", "drift"]\nformat = "json"\nno-server-defaults = true')
    result = project.run(app=None, cwd="backend")
    assert result.code == 0, result.output
    report = json.loads(result.out)
    assert report["checks"] == ["graph", "drift"]
    assert report["directory"] == "migrations"

    result = project.run("--format", "text", "--select", "graph", app=None, cwd="backend")
    assert result.code == 0, result.output
    assert "checks: graph)" in result.out


def test_config_above_the_repository_is_not_read(project: Project) -> None:
    repo = project.path / "repo"
    (repo / ".git").mkdir(parents=True)
    for name in ("sample_app", "migrations"):
        (project.path / name).rename(repo / name)
    config(project, "unknown_key = 1")  # outside the repository migcheck runs in
    result = project.run(*CORE, cwd="repo")
    assert result.code == 0, result.output


@pytest.mark.parametrize(("body", "message"), [
    ('selct = ["drift"]', "[tool.migcheck] has an unknown key 'selct'. Known keys: app, directory,"),
    ('select = ["drfit"]', "[tool.migcheck] select: unknown check 'drfit' (choose from graph,"),
    ('select = "drift"', "[tool.migcheck] select: expected a list of strings, got 'drift'"),
    ('format = "xml"', "[tool.migcheck] format: expected one of text, json, github, junit, sarif, "
                       "got 'xml'"),
    ('no_server_defaults = "yes"', "[tool.migcheck] no_server_defaults: expected true or false, got 'yes'"),
    ('ignore = ["drift-add-colum:user"]', "[tool.migcheck] ignore: 'drift-add-colum:user': no rule id "
                                          "matches 'drift-add-colum'"),
    ('source = ["nowhere"]', "[tool.migcheck] source: no such directory 'nowhere'"),
    ('app = ', "Could not read"),
])
def test_bad_config_is_a_usage_error_naming_the_key(project: Project, body: str, message: str) -> None:
    config(project, body)
    result = project.run(*CORE)
    assert result.code == 2, result.output
    assert message in result.err
    assert str(project.path / "pyproject.toml") in result.err
    assert "Traceback" not in result.err


def test_every_option_has_a_config_key() -> None:
    from migcheck.cli import _parser
    from migcheck.config import SETTINGS

    per_run = {"help", "version", "verbose", "write_baseline", "clear_cache"}  # not project settings
    dests = {action.dest for action in _parser()._actions} - per_run
    assert dests == set(SETTINGS)


def test_db_url_from_config_yields_to_the_environment(project: Project) -> None:
    config(project, 'db_url = "sqlite:///elsewhere.db"')
    result = project.run(*CORE)
    assert result.code == 2 and "'sqlite' is not supported" in result.err, result.output
    result = project.run(*CORE, env={"MIGCHECK_DATABASE_URL": "oracle://scott@localhost/"})
    assert result.code == 2 and "'oracle' is not supported" in result.err, result.output


# --- ignores ------------------------------------------------------------------------------

def test_ignore_a_table_managed_outside_the_migrations(project: Project) -> None:
    add_legacy_table(project)
    result = project.run(*CORE)
    assert result.code == 1, result.output
    line = project.line_of(LEGACY_FILE, 'op.create_table("legacy_audit"')
    assert (f"{LEGACY_FILE}:{line}: drift: table `legacy_audit` is created by the migrations but no "
            "model defines it") in result.out

    config(project, 'ignore = ["drift-remove-table:legacy_audit"]')
    result = project.run(*CORE)
    assert result.code == 0, result.output
    assert "migcheck: no problems (1 suppressed)" in result.out
    report = json.loads(project.run(*CORE, "--format", "json").out)
    assert report["findings"] == [] and report["suppressed"] == {"ignore": 1}


def test_ignore_objects_cover_their_columns_and_cli_replaces_config(project: Project) -> None:
    add_columns(project, "age = db.Column(db.Integer)", "nick = db.Column(db.String(20))")
    config(project, 'ignore = ["drift-add-column:user"]')
    result = project.run(*CORE)
    assert result.code == 0 and "(2 suppressed)" in result.out, result.output

    config(project, 'ignore = ["drift-*:user.age", "drift-add-column:post"]')
    result = project.run(*CORE)
    assert result.code == 1, result.output
    assert "`user.nick`" in result.out and "`user.age`" not in result.out
    assert "1 error, 1 suppressed" in result.out

    result = project.run(*CORE, "--ignore", "drift-add-column:user.nick")  # replaces the config's
    assert result.code == 1, result.output
    assert "`user.age`" in result.out and "`user.nick`" not in result.out


def test_fatal_findings_are_never_suppressed(project: Project) -> None:
    path = project.revision_file(HEAD)
    project.edit(path, "down_revision = '428a6cc61e6a'", "down_revision = 'deadbeef0000'")
    result = project.run(*CORE, "--ignore", "graph-*")
    assert result.code == 2, result.output
    assert "down_revision `deadbeef0000`" in result.out


# --- inline comments ----------------------------------------------------------------------

def test_inline_ignore_on_the_line_of_the_finding(project: Project) -> None:
    add_columns(project, "age = db.Column(db.Integer)  # migcheck: ignore[drift-add-column]",
                "nick = db.Column(db.String(20))  # migcheck: ignore[drift-remove-table]")
    result = project.run(*CORE)
    assert result.code == 1, result.output
    assert "`user.nick`" in result.out and "`user.age`" not in result.out
    assert "1 error, 1 suppressed" in result.out


def test_inline_ignore_at_the_top_of_a_revision_covers_the_file(project: Project) -> None:
    add_legacy_table(project, top="# migcheck: ignore[drift-remove-table, drift-remove-index]\n")
    result = project.run(*CORE)
    assert result.code == 0, result.output
    assert "no problems (1 suppressed)" in result.out


def test_inline_ignore_below_the_imports_covers_only_its_line(project: Project) -> None:
    add_legacy_table(project, below="# migcheck: ignore[drift-remove-table]\n")
    result = project.run(*CORE)
    assert result.code == 1, result.output
    assert "table `legacy_audit` is created by the migrations" in result.out


# --- baseline -----------------------------------------------------------------------------

def test_baseline_reports_only_new_findings(project: Project) -> None:
    add_columns(project, "age = db.Column(db.Integer)")
    result = project.run(*CORE, "--write-baseline", "migcheck-baseline.json")
    assert result.code == 0, result.output
    assert "recorded 1 findings in migcheck-baseline.json" in result.err
    assert "no problems (1 suppressed)" in result.out
    recorded = json.loads(project.read("migcheck-baseline.json"))
    assert recorded["version"] == 1
    assert recorded["findings"] == [{
        "rule": "drift-add-column", "path": USER, "object": "user.age",
        "message": "column `user.age` is in the model but no migration creates it"}]

    # Lines move and a new problem appears: only the new one is reported.
    project.edit(USER, "class User(db.Model):\n", "# moved\n\n\nclass User(db.Model):\n")
    add_columns(project, "nick = db.Column(db.String(20))")
    config(project, 'baseline = "migcheck-baseline.json"')
    result = project.run(*CORE)
    assert result.code == 1, result.output
    assert "`user.nick`" in result.out and "`user.age`" not in result.out
    assert "1 error, 1 suppressed" in result.out


def test_missing_baseline_is_a_usage_error(project: Project) -> None:
    result = project.run(*CORE, "--baseline", "nope.json")
    assert result.code == 2, result.output
    assert "The baseline file 'nope.json' does not exist. Create it with --write-baseline nope.json." \
        in result.err


# --- where a value came from --------------------------------------------------------------

def test_errors_name_pyproject_toml_as_the_source(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    config(project, 'directory = "nowhere"')
    result = project.run(*CORE)
    assert result.code == 2, result.output
    assert (f"No Flask-Migrate migrations directory at '{project.path / 'nowhere'}' (from directory in "
            f"[tool.migcheck] of {pyproject}):") in result.err
    config(project, 'db_url = "postgresql://postgres@127.0.0.1:abc/"')
    result = project.run(*CORE)
    assert result.code == 2, result.output
    assert result.err.startswith(f"migcheck: error: db_url in [tool.migcheck] of {pyproject}: "
                                 "'postgresql://postgres@127.0.0.1:abc/' is not a database URL")


def test_errors_name_the_environment_or_the_flag_as_the_source(project: Project) -> None:
    result = project.run(*CORE, env={"MIGCHECK_DATABASE_URL": "oracle://scott@localhost/"})
    assert result.code == 2 and result.err.startswith(
        "migcheck: error: MIGCHECK_DATABASE_URL: 'oracle' is not supported"), result.output
    result = project.run(*CORE, "--db-url", "oracle://scott@localhost/", "--directory", "nowhere")
    assert result.code == 2 and result.err.startswith(
        "migcheck: error: --db-url: 'oracle' is not supported"), result.output
    result = project.run(*CORE, "--directory", "nowhere")
    assert result.code == 2 and "(from --directory, relative to" in result.err, result.output
