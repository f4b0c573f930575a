"""`flask migcheck`: the real `flask` executable finds migcheck through the flask.commands entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import Project, Result

FLASK = Path(sys.executable).parent / "flask"
USER = "sample_app/models/user.py"
BIO = "    bio = db.Column(db.Text)\n"
INIT = "sample_app/__init__.py"
SECONDS = re.compile(r" in \d+\.\d+s ")

# `flask --app` is new in Flask 2.2; every version takes FLASK_APP. The lanes run this file on
# Flask 1.1 (plugins found through pkg_resources, click 7.1), 2.1 and 3.x.
HAS_APP_OPTION = tuple(int(part) for part in metadata.version("flask").split(".")[:2]) >= (2, 2)


def flask(project: Project, *args: str, env: dict[str, str] | None = None) -> Result:
    done = subprocess.run([str(FLASK), *args], cwd=project.path, env=project.env(env),
                          capture_output=True, text=True, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(params=["--app", "FLASK_APP"])
def naming(request: pytest.FixtureRequest) -> str:
    """How `flask` is told the app: its --app option, or the FLASK_APP variable."""
    if request.param == "--app" and not HAS_APP_OPTION:
        pytest.skip("`flask --app` is new in Flask 2.2; older Flask takes FLASK_APP (the other case)")
    return str(request.param)


def flask_with(project: Project, naming: str, app: str, *args: str) -> Result:
    """`flask [--app APP] ARGS`, or `FLASK_APP=APP flask ARGS`."""
    if naming == "--app":
        return flask(project, "--app", app, *args)
    return flask(project, *args, env={"FLASK_APP": app})


def same_report(one: str, other: str) -> bool:
    return SECONDS.sub(" in Ns ", one) == SECONDS.sub(" in Ns ", other)


def test_flask_migcheck_runs_migcheck_with_its_findings_and_exit_code(project: Project, naming: str) -> None:
    project.edit(USER, BIO, BIO + "    age = db.Column(db.Integer)\n")
    args = ("--select", "graph,upgrade,drift", "--no-cache")
    result = flask_with(project, naming, "sample_app:app", "migcheck", *args)
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


def test_the_app_is_loaded_by_migcheck_inside_its_scratch_area_not_by_flask(project: Project,
                                                                            naming: str) -> None:
    # The factory writes to its configured database: had `flask` loaded the app before migcheck
    # redirected the databases, configured.sqlite would exist (the fixture fails the test then).
    project.edit(INIT, "    app.register_blueprint(bp)\n",
                 "    app.register_blueprint(bp)\n    with app.app_context():\n        db.create_all()\n")
    result = flask_with(project, naming, "sample_app:app", "migcheck", "--select", "graph,upgrade")
    assert result.code == 0, result.output
    assert "the app created tables in the default database while it loaded" in result.out
    assert not project.configured_db.exists()


def test_usage_errors_help_and_version_are_migchecks_own(project: Project, naming: str) -> None:
    bad = flask_with(project, naming, "sample_app:app", "migcheck", "--select", "nope")
    assert bad.code == 2, bad.output
    assert "flask migcheck: error: --select: unknown check nope" in bad.err
    not_found = flask_with(project, naming, "nosuch", "migcheck")
    assert not_found.code == 2, not_found.output
    assert not_found.err.startswith("migcheck: error: Could not import 'nosuch'")
    helped = flask(project, "migcheck", "--help")
    assert helped.code == 0 and helped.out.startswith("usage: flask migcheck "), helped.output
    assert "exit codes:" in helped.out
    listed = flask_with(project, naming, "sample_app:app", "--help")
    assert re.search(r"^  migcheck +Check that the migrations match the models", listed.out, re.MULTILINE)
    assert flask(project, "migcheck", "--version").out.startswith("migcheck ")


MANAGE = """from flask.cli import FlaskGroup

from sample_app import create_app

cli = FlaskGroup(create_app=create_app)

if __name__ == "__main__":
    cli()
"""


def test_migcheck_in_a_projects_own_flaskgroup_uses_the_app_that_cli_knows(project: Project) -> None:
    # `python manage.py migcheck`: the FlaskGroup knows the app only by its create_app. migcheck
    # builds it with that factory, inside its scratch area: the factory writes to its configured
    # database (the fixture fails the test had it been created).
    project.write("manage.py", MANAGE)
    project.edit(INIT, "\napp = create_app()\n", "\n")  # importing the package creates no app
    project.edit(INIT, "    app.register_blueprint(bp)\n",
                 "    app.register_blueprint(bp)\n    with app.app_context():\n        db.create_all()\n")
    project.edit(USER, BIO, BIO + "    age = db.Column(db.Integer)\n")
    done = subprocess.run([sys.executable, "manage.py", "migcheck", "--select", "graph,upgrade,drift",
                           "--no-cache"], cwd=project.path, env=project.env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    line = project.line_of(USER, "age = db.Column")
    assert (f"{USER}:{line}: drift: column `user.age` is in the model but no migration creates it"
            in done.stdout)
    assert "the app created tables in the default database while it loaded" in done.stdout
    assert "migcheck: 1 error, 1 info in " in done.stdout
    assert not project.configured_db.exists()
    # --app after `migcheck` still wins over what the group knows
    other = subprocess.run([sys.executable, "manage.py", "migcheck", "--app", "nosuch"],
                           cwd=project.path, env=project.env(), capture_output=True, text=True,
                           timeout=120)
    assert other.returncode == 2 and "Could not import 'nosuch'" in other.stderr, other.stderr
