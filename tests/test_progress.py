"""The live status line: on a terminal (a real pseudo-terminal) during a long run, never in pipes."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Project

REVISIONS = 200  # a cold run of this history takes a few seconds: well past the status line's delay
APP = "benchapp:app"
STATUS = re.compile(rf"migcheck: roundtrip, revision (\d+) of {REVISIONS} \(\d+s\)")
SECONDS = re.compile(r" in \d+\.\d+s ")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A generated project (bench/generate.py) with a long, clean history."""
    path = tmp_path_factory.mktemp("long")
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(path / "p"),
                    "--revisions", str(REVISIONS), "--models", "20"], check=True, capture_output=True)
    return Project(path / "p")


def on_terminal(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on a pseudo-terminal; everything it wrote, as a terminal got it."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=terminal, stdout=terminal, stderr=terminal,
                               start_new_session=True)
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([controller], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every process on the terminal has closed it
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
    return process.wait(timeout=10), output.decode()


def test_a_long_run_on_a_terminal_shows_progress_then_the_same_report(history: Project) -> None:
    env = history.env()
    code, shown = on_terminal([sys.executable, "-m", "migcheck", f"--app={APP}", "--no-cache"],
                              history.path, env)
    piped = history.run("--no-cache", app=APP)
    assert code == piped.code == 0, shown + piped.output
    assert piped.err == ""  # no status line, not even an erased one, in a pipe

    shown = shown.replace("\r\n", "\n")  # the terminal's own newline translation
    status, _, report = shown.rpartition("\r")
    # Everything before the report is status lines, each drawn over the last, and then erased.
    *lines, erased = status.split("\r")
    assert lines and all(line.strip() == "" or line.startswith("migcheck: ") for line in lines), lines
    revisions = [int(match.group(1)) for line in lines if (match := STATUS.match(line))]
    assert revisions and revisions == sorted(revisions) and revisions[-1] <= REVISIONS, lines
    assert erased.strip() == "" and len(erased) >= len(lines[-1].rstrip())
    assert SECONDS.sub(" in Ns ", report) == SECONDS.sub(" in Ns ", piped.out)
    assert report.splitlines()[-1].startswith("migcheck: no problems in ") and "\r" not in report


def test_no_progress_with_a_machine_format_on_stdout_even_on_a_terminal(history: Project) -> None:
    code, shown = on_terminal([sys.executable, "-m", "migcheck", f"--app={APP}", "--no-cache",
                               "--format", "json"], history.path, history.env())
    assert code == 0, shown
    assert "\r" not in shown.replace("\r\n", "\n") and "migcheck: roundtrip" not in shown
    assert shown.lstrip().startswith("{")

