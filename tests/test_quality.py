"""The code stays ruff-clean and type-checked, in CI as on a developer's machine."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_ruff() -> None:
    result = _run("ruff", "check", "migcheck", "tests", "bench", "action")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = _run("mypy")  # the files and settings are in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
