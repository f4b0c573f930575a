"""Installing migcheck into a project's environment leaves the project's stack alone.

migcheck runs inside the user's environment: if its requirements were above what a project pins,
`pip install migcheck` would upgrade Flask-SQLAlchemy or SQLAlchemy under the project and break it.
Each lane (noxfile.py) runs this against its own stack: pip resolves every requirement migcheck
declares (extras included) against the packages installed here, and must want to change none of
the five.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

STACK = ("flask", "flask-sqlalchemy", "flask-migrate", "sqlalchemy", "alembic")


def _requirements() -> list[str]:
    """What `pip install "migcheck[postgres,mysql,test]"` asks for, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["postgres"], *extras["mysql"], *extras["test"]]


def test_installing_migcheck_changes_none_of_the_stack(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    # --no-index: the resolver can only keep what is installed here, so it fails when the stack
    # does not satisfy migcheck's requirements (with an index it would plan an upgrade instead,
    # which the report would show). Resolving the requirements rather than the project itself
    # needs no build backend and no network.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
         "--report", str(report), *_requirements()],
        capture_output=True, text=True, timeout=300)
    stack = {name: metadata.version(name) for name in STACK}
    assert done.returncode == 0, f"migcheck's requirements do not fit this stack {stack}: {done.stderr}"
    would_install = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                     for item in json.loads(report.read_text())["install"]}
    touched = {name: f"{stack[name]} -> {would_install[name]}" for name in STACK if name in would_install}
    assert not touched, f"installing migcheck would change the project's stack: {touched}"
