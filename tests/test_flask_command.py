"""`flask migcheck`: the real `flask` executable finds migcheck through the flask.commands entry point."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Project, Result

FLASK = Path(sys.executable).parent / "flask"
USER = "sample_app/models/user.py"
BIO = "    bio = db.Column(db.Text)\n"
INIT = "sample_app/__init__.py"
SECONDS = re.compile(r" in \d+\.\d+s ")

# Older stacks that real projects pin (see NOTES.md): Flask 1.1.4 loads plugins with pkg_resources
# and click 7.1; Flask 2.1 with importlib.metadata. Neither has `flask --app`: only FLASK_APP.
OLD_FLASKS = {
    "1.1.4": ["Flask==1.1.4", "Werkzeug==1.0.1", "Jinja2==2.11.3", "MarkupSafe==2.0.1", "itsdangerous==1.1.0",
              "click==7.1.2", "SQLAlchemy==1.3.24", "Flask-SQLAlchemy==2.5.1", "Flask-Migrate==2.5.3",
              "alembic==1.7.7", "python-dotenv"],
    "2.1.3": ["Flask==2.1.3", "Werkzeug==2.1.2", "SQLAlchemy==1.4.54", "Flask-SQLAlchemy==2.5.1",
              "Flask-Migrate==3.1.0", "alembic==1.13.3", "python-dotenv"],
}


def flask(project: Project, *args: str, env: dict[str, str] | None = None,
          executable: Path = FLASK) -> Result:
    done = subprocess.run([str(executable), *args], cwd=project.path, env=project.env(env),
                          capture_output=True, text=True, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


def same_report(one: str, other: str) -> bool:
    return SECONDS.sub(" in Ns ", one) == SECONDS.sub(" in Ns ", other)


def test_flask_app_option_runs_migcheck_with_its_findings_and_exit_code(project: Project) -> None:
    project.edit(USER, BIO, BIO + "    age = db.Column(db.Integer)\n")
    args = ("--select", "graph,upgrade,drift", "--no-cache")
    result = flask(project, "--app", "sample_app:app", "migcheck", *args)
    assert result.code == 1, result.output
    line = project.line_of(USER, "age = db.Column")
    assert (f"{USER}:{line}: drift: column `user.age` is in the model but no migration creates it"
            in result.out)
    assert same_report(result.out, project.run(*args).out)


def test_flask_app_env_and_machine_formats_match_migcheck(project: Project) -> None:
    result = flask(project, "migcheck", "--select", "graph,drift", "--format", "json",
                   env={"FLASK_APP": "sample_app:app"})
    assert result.code == 0, result.output
    report = json.loads(result.out)
    assert report["app"] == "sample_app" and report["findings"] == []
    project.write(".flaskenv", "FLASK_APP=sample_app:app\n")  # read by `flask` and by migcheck alike
    assert flask(project, "migcheck", "--select", "graph").code == 0


def test_the_app_is_loaded_by_migcheck_inside_its_scratch_area_not_by_flask(project: Project) -> None:
    # The factory writes to its configured database: had `flask` loaded the app before migcheck
    # redirected the databases, configured.sqlite would exist (the fixture fails the test then).
    project.edit(INIT, "    app.register_blueprint(bp)\n",
                 "    app.register_blueprint(bp)\n    with app.app_context():\n        db.create_all()\n")
    result = flask(project, "--app", "sample_app:app", "migcheck", "--select", "graph,upgrade")
    assert result.code == 0, result.output
    assert "the app created tables in the default database while it loaded" in result.out
    assert not project.configured_db.exists()


def test_usage_errors_help_and_version_are_migchecks_own(project: Project) -> None:
    bad = flask(project, "--app", "sample_app:app", "migcheck", "--select", "nope")
    assert bad.code == 2, bad.output
    assert "flask migcheck: error: --select: unknown check nope" in bad.err
    not_found = flask(project, "--app", "nosuch", "migcheck")
    assert not_found.code == 2, not_found.output
    assert not_found.err.startswith("migcheck: error: Could not import 'nosuch'")
    helped = flask(project, "migcheck", "--help")
    assert helped.code == 0 and helped.out.startswith("usage: flask migcheck "), helped.output
    assert "exit codes:" in helped.out
    listed = flask(project, "--app", "sample_app:app", "--help")
    assert re.search(r"^  migcheck +Check that the migrations match the models", listed.out, re.MULTILINE)
    assert flask(project, "migcheck", "--version").out.startswith("migcheck ")


@pytest.fixture(scope="module", params=sorted(OLD_FLASKS))
def old_flask(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with an old Flask stack and this migcheck: its `flask` executable."""
    venv = tmp_path_factory.mktemp(f"flask-{request.param}") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + OLD_FLASKS[request.param], check=True, timeout=600,
                   env={**os.environ, "DISABLE_SQLALCHEMY_CEXT": "1"})  # SQLAlchemy 1.3: no 3.11 wheel
    source = venv.parent / "migcheck"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT / "migcheck", source / "migcheck", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(pip + ["--no-deps", str(source)], check=True, timeout=600)
    return venv / "bin" / "flask"


def test_old_flask_versions_find_the_command_and_pass_flask_app(project: Project, old_flask: Path) -> None:
    version = flask(project, "migcheck", "--version", executable=old_flask)
    assert version.code == 0 and version.out.startswith("migcheck "), version.output
    # FLASK_APP reaches migcheck's loader: its message, its exit code.
    missing = flask(project, "migcheck", env={"FLASK_APP": "nosuch"}, executable=old_flask)
    assert missing.code == 2, missing.output
    assert missing.err.startswith("migcheck: error: Could not import ") and "nosuch" in missing.err


def test_old_flask_versions_run_the_checks(project: Project, old_flask: Path) -> None:
    result = flask(project, "migcheck", "--select", "graph,upgrade,drift",
                   env={"FLASK_APP": "sample_app:app"}, executable=old_flask)
    assert result.code == 0, result.output
    assert "migcheck: no problems" in result.out
