"""The command line: check selection, colour, and a start-up that imports nothing heavy."""

import subprocess
import sys

import pytest
from conftest import ROOT, Project

from migcheck import __version__

ANSI = "\033["


def test_select_and_skip(project: Project) -> None:
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    result = project.run("--select", "graph")
    assert result.code == 0, result.output
    assert "checks: graph)" in result.out

    result = project.run("--skip", "drift")
    assert result.code == 0, result.output
    assert "drift" not in result.out

    result = project.run("--select", "upgrade,drift")
    assert result.code == 1, result.output
    assert "drift: column `user.age` is in the model but no migration creates it" in result.out
    assert "checks: upgrade, drift)" in result.out


def test_unknown_check_is_a_usage_error(project: Project) -> None:
    result = project.run("--select", "graph,drfit")
    assert result.code == 2, result.output
    assert "migcheck: error: --select: unknown check drfit (choose from graph, upgrade, drift" in result.err


@pytest.mark.parametrize(("args", "env", "colored"), [
    (["--color", "always"], {}, True),
    ([], {"FORCE_COLOR": "1"}, True),
    ([], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),  # NO_COLOR wins
    ([], {}, False),  # not a terminal
])
def test_color(project: Project, args: list[str], env: dict[str, str], colored: bool) -> None:
    env = {"NO_COLOR": "", **env}
    result = project.run("--select", "graph", *args, env=env)
    assert result.code == 0, result.output
    assert (ANSI in result.out) is colored, result.out
    assert "no problems" in result.out


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_flask_or_sqlalchemy(flag: str) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "migcheck", flag], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ("usage: migcheck" in done.stdout) if flag == "--help" else (
        done.stdout == f"migcheck {__version__}\n")
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "argparse" in imported  # the import log is there
    assert not imported & {"flask", "sqlalchemy", "alembic", "flask_sqlalchemy", "flask_migrate"}


@pytest.mark.parametrize("password", ["S3cr3tPW", "S3c@r3t@PW", "pa:ss@word"])
def test_password_of_a_url_that_does_not_parse_is_masked(project: Project, password: str) -> None:
    result = project.run(env={"MIGCHECK_DATABASE_URL": f"postgresql://postgres:{password}@127.0.0.1:abc/"})
    assert result.code == 2, result.output
    assert result.err.startswith("migcheck: error: MIGCHECK_DATABASE_URL: 'postgresql://postgres:***@"
                                 "127.0.0.1:abc/' is not a database URL"), result.err
    for part in {password, *password.split("@")[1:], *password.split(":")[1:]}:
        assert part not in result.output


def test_passwords_in_the_apps_output_and_reports_are_masked(project: Project) -> None:
    project.append("sample_app/extensions.py",
                   '\nprint("connecting to mysql+pymysql://app:hunter2@db.internal/shop")\n')
    result = project.run("--format", "json")
    assert result.code == 0, result.output
    assert "mysql+pymysql://app:***@db.internal/shop" in result.err
    assert "hunter2" not in result.output


def test_main_called_again_in_one_process_installs_its_hooks_once(project: Project) -> None:
    # tests and `flask migcheck` may call main() several times in one process
    script = """import atexit, signal, sys, threading
from migcheck.cli import main
codes = [main(["--app=sample_app:app", "--select", "graph"])]
after_one = (atexit._ncallbacks(), threading.excepthook, sys.unraisablehook)
codes += [main(["--app=sample_app:app", "--select", "graph"]) for _ in range(2)]
print(codes, after_one == (atexit._ncallbacks(), threading.excepthook,
      sys.unraisablehook), signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=project.path, env=project.env(None),
                          capture_output=True, text=True, timeout=120)
    assert done.stderr.splitlines()[-1] == "[0, 0, 0] True True", done.stdout + done.stderr
