"""Odd but valid (or plainly broken) input files: a clear one-paragraph error naming the file and exit 2,
or the same finding a run without the cache gives; never an internal error or a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import Project, Result

FIRST = "1f5ecceb0b09"  # the first revision of sample_app's history


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize(("change", "error"), [
    (lambda text: b"x = 1\n" + text, "MissingSectionHeaderError: File contains no section headers."),
    (lambda text: text + b"\n[alembic]\nscript_location = .\n",
     "DuplicateSectionError: While reading from"),
    (lambda text: text + b"\n# \xff\n", "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"),
])
def test_alembic_ini_that_configparser_rejects(project: Project, change: object, error: str) -> None:
    ini = project.path / "migrations" / "alembic.ini"
    ini.write_bytes(change(ini.read_bytes()))  # type: ignore[operator]
    result = project.run()
    assert result.code == 2, result.output
    assert result.err.startswith(f"migcheck: error: Could not read migrations/alembic.ini: {error}"), \
        result.err
    assert result.err.endswith("Alembic reads it as an INI file in UTF-8: every setting under a [section] "
                               "header, each section once. Fix the file (`flask db init` writes a fresh "
                               "one).\n"), result.err
    assert len(result.err.splitlines()) == 1
    _no_traceback(result)


def test_undeclared_latin1_byte_in_a_revision_comment(project: Project) -> None:
    """Python before 3.12 runs such a file; migcheck reads its lines all the same."""
    path = project.path / project.revision_file(FIRST)
    path.write_bytes(b"# caf\xe9\n" + path.read_bytes())
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError:
        pytest.skip("this Python refuses the file itself (3.12+): Alembic cannot load it either")
    result = project.run()
    assert result.code == 0, result.output
    assert "no problems" in result.out
    _no_traceback(result)


@pytest.mark.parametrize("content", [
    pytest.param(lambda text: text + b"\n\x00\n", id="nul-byte"),
    pytest.param(lambda text: bytes(range(256)) * 4, id="binary"),
    pytest.param(lambda text: text.decode().encode("utf-16"), id="utf-16"),
])
def test_revision_file_python_cannot_read_is_named(project: Project, content: object) -> None:
    relpath = project.revision_file(FIRST)
    path = project.path / relpath
    path.write_bytes(content(path.read_bytes()))  # type: ignore[operator]
    result = project.run()
    assert result.code == 2, result.output
    assert result.err.startswith(f"migcheck: error: Could not read the revision files in {relpath}:"), \
        result.err
    _no_traceback(result)


def test_pyproject_toml_that_is_not_utf8(project: Project) -> None:
    project.write("pyproject.toml", "")
    (project.path / "pyproject.toml").write_bytes(b"[tool.migcheck]\n# \xff\n")
    result = project.run()
    assert result.code == 2, result.output
    assert result.err == (f"migcheck: error: Could not read {project.path / 'pyproject.toml'}: it is not "
                          "UTF-8, which TOML files must be ('utf-8' codec can't decode byte 0xff in "
                          "position 18: invalid start byte). Save it as UTF-8.\n")


def test_flaskenv_that_is_not_utf8(project: Project) -> None:
    pytest.importorskip("dotenv", reason="without python-dotenv, Flask does not read .flaskenv at all")
    (project.path / ".flaskenv").write_bytes(b"FLASK_APP=sample_app:app\n# \xff\n")
    result = project.run(app=None)
    assert result.code == 2, result.output
    assert result.err.startswith("migcheck: error: Could not read .flaskenv: it is not UTF-8 ("), result.err
    assert result.err.endswith("Save it as UTF-8.\n")
    _no_traceback(result)


def _run_without_root_powers(project: Project, *args: str) -> Result:
    """As `project.run`, but file permissions hold (root's override of them dropped)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux): a mode 000 file is readable")
        drop = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}"]
    done = subprocess.run([*prefix, sys.executable, "-m", "migcheck", "--app=sample_app:app", *args],
                          cwd=project.path, env=project.env(), capture_output=True, text=True, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("name", ["env.py", "alembic.ini"])
def test_unreadable_env_py_or_alembic_ini_gives_the_finding_of_a_run_without_cache(
        project: Project, name: str) -> None:
    path = project.path / "migrations" / name
    path.chmod(0)
    try:
        cached = _run_without_root_powers(project)
        fresh = _run_without_root_powers(project, "--no-cache")
    finally:
        path.chmod(0o644)
    assert cached.code == fresh.code == 1, cached.output
    assert "upgrade: env.py failed before any migration ran" in cached.out
    assert cached.out.splitlines()[:2] == fresh.out.splitlines()[:2]
    _no_traceback(cached)
