"""The test lanes: the whole suite on each library stack migcheck supports.

`nox` runs every lane, `nox -s oldest` one of them, `nox -r -s oldest` reuses that lane's venv.
Each lane installs migcheck with its test extras under the lane's constraints file (lanes/*.txt),
so neither migcheck's own dependencies nor the test tools can move the stack the lane is about.
Arguments after `--` go to pytest: `nox -s current -- tests/test_drift.py -k type`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["current", "legacy", "oldest"]
nox.options.error_on_missing_interpreters = True

LANES = Path(__file__).parent / "lanes"


def _run_lane(session: nox.Session, lane: str) -> None:
    constraints = str(LANES / f"{lane}.txt")
    # setuptools too, so that a lane that pins it (oldest: Flask 1.1 needs pkg_resources) gets its pin.
    session.install("-c", constraints, "setuptools", "-e", ".[test,postgres,mysql]")
    if shutil.which("mariadb_config") or shutil.which("mysql_config"):  # it builds against them
        session.install("-c", constraints, "mysqlclient")  # tests/test_guard.py: the MySQLdb door
    # The tests run migcheck with PYTHONDONTWRITEBYTECODE, so that the project copies they edit never
    # meet stale bytecode; migcheck's own modules are compiled once here instead of in every run.
    session.run("python", "-m", "compileall", "-q", "migcheck")
    session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=False)
    # The pins must hold: a dependency that sneaked a different version in makes the lane a lie.
    session.run("python", "-m", "pip", "check")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session
def current(session: nox.Session) -> None:
    """The newest releases: Flask 3, Flask-SQLAlchemy 3, SQLAlchemy 2, Flask-Migrate 4."""
    _run_lane(session, "current")


@nox.session
def legacy(session: nox.Session) -> None:
    """Flask 2.1, Flask-SQLAlchemy 2.5.1, SQLAlchemy 1.4, Flask-Migrate 3.1, Alembic 1.8."""
    _run_lane(session, "legacy")


@nox.session
def oldest(session: nox.Session) -> None:
    """The floors: Flask 1.1.4, Flask-SQLAlchemy 2.5.0, SQLAlchemy 1.3.24, Flask-Migrate 2.5.0."""
    _run_lane(session, "oldest")
