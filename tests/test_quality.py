"""The code stays ruff-clean and type-checked, in CI as on a developer's machine."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from conftest import ROOT


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_ruff() -> None:
    result = _run("ruff", "check", "migcheck", "tests", "bench", "action")
    assert result.returncode == 0, result.stdout + result.stderr


def _ships_types(package: str) -> bool:
    spec = find_spec(package)
    return spec is not None and spec.origin is not None and (Path(spec.origin).parent / "py.typed").exists()


def test_mypy() -> None:
    # The files and settings are in pyproject.toml. SQLAlchemy < 2 and Flask-SQLAlchemy < 3 ship no
    # types (the older lanes): mypy still checks migcheck there, but the `type: ignore` comments the
    # typed releases need are unused on them, which is no error.
    typed = _ships_types("sqlalchemy") and _ships_types("flask_sqlalchemy")
    result = _run("mypy", *([] if typed else ["--no-warn-unused-ignores"]))
    assert result.returncode == 0, result.stdout + result.stderr
