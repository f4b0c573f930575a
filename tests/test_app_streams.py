"""What the app prints is shown once, after the report; the app has no terminal to read from."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import Project

INIT = "sample_app/__init__.py"
BIO = "428a6cc61e6a"
COMMENTS = "e9e549eb0d5f"
NOISY_FACTORY = """import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
print(" * Loaded plugins")
for step in range(47):
    logging.getLogger("sample_app.startup").info("startup step %d", step)


def create_app("""


def merged(project: Project, *args: str) -> str:
    """stdout and stderr of a run, as a terminal shows them."""
    done = subprocess.run([sys.executable, "-m", "migcheck", "--app=sample_app:app", *args],
                          cwd=project.path, env=project.env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)
    return done.stdout


def test_the_apps_output_is_shown_once_after_the_report(project: Project) -> None:
    project.edit(INIT, "def create_app(", NOISY_FACTORY)
    # env.py runs again at each rebuild of the round trip, after each of these bad downgrades when
    # the walk re-upgrades (by default SQLite rolls a bad downgrade back, with no rebuild)
    project.edit("migrations/env.py", "config = context.config\n",
                 "config = context.config\nprint('env.py: configuring')\n")
    project.replace_downgrade(BIO, "    pass\n")
    project.replace_downgrade(COMMENTS, "    pass\n")
    result = project.run("--select", "roundtrip", "--no-cache", "--reupgrade")
    assert result.code == 1, result.output
    assert "Loaded plugins" not in result.out and "env.py: configuring" not in result.out
    assert result.err.count("env.py: configuring") == 0  # not among the first five lines
    header, *shown = result.err.splitlines()
    written = re.fullmatch(r"migcheck: the app's own output while migcheck ran it \((\d+) lines, 49 "
                           r"different; the first 5 below, all of them with --verbose\):", header)
    assert written and int(written[1]) > 49, result.err  # env.py printed at each run of it
    assert shown == ["  |  * Loaded plugins",
                     *(f"  | INFO sample_app.startup: startup step {step}" for step in range(4))]

    verbose = project.run("--select", "roundtrip", "--no-cache", "--reupgrade", "--verbose")
    assert verbose.code == 1, verbose.output
    assert verbose.err.count("  | env.py: configuring\n") == 1  # printed more than once, shown once
    assert verbose.err.count("  | INFO sample_app.startup: startup step") == 47

    shown = merged(project, "--select", "roundtrip", "--no-cache")
    summary = shown.index("\nmigcheck: 2 errors in ")
    assert shown.index("migcheck: the app's own output") > summary  # after the report


def test_a_machine_report_on_stdout_stays_parseable(project: Project) -> None:
    project.edit(INIT, "def create_app(", NOISY_FACTORY)
    result = project.run("--format", "json", "--select", "graph,upgrade")
    assert result.code == 0, result.output
    assert json.loads(result.out)["exit_code"] == 0
    assert "  |  * Loaded plugins\n" in result.err


@pytest.mark.parametrize("where", ["revision", "factory", "caught"])
def test_code_that_reads_from_the_terminal_cannot_be_checked(project: Project, where: str) -> None:
    if where == "factory":
        path = INIT
        project.edit(INIT, "    db.init_app(app)\n",
                     "    name = input('config name? ')\n    db.init_app(app)\n")
    else:
        path = project.revision_file(BIO)
        reads = "    input('really? ')\n" if where == "revision" else \
            "    try:\n        input('really? ')\n    except Exception:\n        pass\n"
        project.edit(path, "def upgrade():\n", "def upgrade():\n" + reads)
    result = project.run("--no-cache")
    assert result.code == 2, result.output
    line = project.line_of(path, "input(")
    assert result.err.startswith(
        f"migcheck: error: Your code reads from the terminal (input()) at {path}:{line}, so migcheck "
        "could not check: it runs the app without a terminal"), result.err
    assert "EOFError" not in result.output and "Traceback" not in result.output
