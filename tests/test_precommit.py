"""The pre-commit hooks, run by the real pre-commit on a git repository holding a copy of sample_app."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Project, Result

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
USER = "sample_app/models/user.py"
BIO = "    bio = db.Column(db.Text)\n"
AGE = "    age = db.Column(db.Integer)\n"


def drift(project: Project) -> str:
    """The finding for the model-only column `user.age`, as the text report shows it."""
    line = project.line_of(USER, AGE.strip())
    return f"{USER}:{line}: drift: column `user.age` is in the model but no migration creates it"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, **GIT_IDENTITY})


def commit_all(cwd: Path) -> None:
    if not (cwd / ".git").exists():
        git(cwd, "init", "-q")
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "--allow-empty", "-m", "snapshot")


@pytest.fixture
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's hook manifest and package, committed (try-repo sees only tracked files)."""
    repo = tmp_path_factory.mktemp("hooks")
    shutil.copytree(ROOT / "migcheck", repo / "migcheck", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, repo / name)
    commit_all(repo)
    return repo


def pre_commit(project: Project, *args: str, venv_on_path: bool = True, timeout: float = 120) -> Result:
    """Run pre-commit in the project's repository, with this venv's `migcheck` on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin]
    env = project.env({**GIT_IDENTITY, "PRE_COMMIT_HOME": str(project.path / ".pre-commit-home"),
                       "PATH": os.pathsep.join([venv_bin] * venv_on_path + path)})
    env.pop("TMPDIR")  # pre-commit's and pip's temporary files are not migcheck's scratch area
    done = subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=project.path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def user_repo(project: Project, drift: bool) -> None:
    """The user's repository: the app, its migrations, and the app named in pyproject.toml."""
    project.write("pyproject.toml", '[tool.migcheck]\napp = "sample_app:app"\n')
    project.write(".gitignore", ".tmp/\n.pre-commit-home/\n")
    if drift:
        project.edit(USER, BIO, BIO + AGE)
    commit_all(project.path)


def test_manifest_is_valid_and_matches_models_and_migrations() -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["migcheck"]["language"] == "system"
    assert hooks["migcheck-isolated"]["language"] == "python"
    for hook in hooks.values():
        assert hook["entry"] == "migcheck"
        assert hook["pass_filenames"] is False and hook["require_serial"] is True
        files = re.compile(hook["files"])
        for path in ("sample_app/models/user.py", "migrations/versions/1f5e_create.py", "migrations/env.py",
                     "migrations/alembic.ini", "migrations/script.py.mako", "pyproject.toml"):
            assert files.search(path), path
        for path in ("README.md", "static/app.js", "docs/models.rst"):
            assert not files.search(path), path
    for command, name in (("validate-manifest", ".pre-commit-hooks.yaml"),
                          ("validate-config", ".pre-commit-config.yaml")):
        done = subprocess.run([sys.executable, "-m", "pre_commit", command, str(ROOT / name)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_system_hook_passes_on_a_clean_app(project: Project, hook_repo: Path) -> None:
    user_repo(project, drift=False)
    result = pre_commit(project, "try-repo", str(hook_repo), "migcheck", "--all-files", "--verbose")
    assert result.code == 0, result.output
    assert re.search(r"^migcheck\.+Passed$", result.out, re.MULTILINE)
    assert "migcheck: no problems" in result.out  # --verbose shows the hook's own output


def test_system_hook_fails_on_drift_with_the_finding(project: Project, hook_repo: Path) -> None:
    user_repo(project, drift=True)
    result = pre_commit(project, "try-repo", str(hook_repo), "migcheck", "--all-files")
    assert result.code == 1, result.output
    assert re.search(r"^migcheck\.+Failed$", result.out, re.MULTILINE)
    assert "- exit code: 1" in result.out
    assert drift(project) in result.out


def test_isolated_hook_installs_migcheck_itself(project: Project, hook_repo: Path) -> None:
    # pre-commit pip-installs the hook repository (and its dependencies) into its own virtualenv;
    # sample_app needs nothing beyond migcheck's own dependencies, so no additional_dependencies.
    # Without this venv on PATH: the migcheck that runs is the one pre-commit installed.
    user_repo(project, drift=True)
    result = pre_commit(project, "try-repo", str(hook_repo), "migcheck-isolated", "--all-files",
                        venv_on_path=False, timeout=300)
    assert result.code == 1, result.output
    assert "Installing environment" in result.out
    assert drift(project) in result.out


def test_this_repositorys_config_runs_migcheck_on_sample_app(project: Project) -> None:
    shutil.copy(ROOT / ".pre-commit-config.yaml", project.path / ".pre-commit-config.yaml")
    project.write(".gitignore", ".tmp/\n.pre-commit-home/\n")
    commit_all(project.path)
    result = pre_commit(project, "run", "migcheck", "--all-files")
    assert result.code == 0, result.output
    assert re.search(r"^migcheck \(sample_app\)\.+Passed$", result.out, re.MULTILINE)

    project.edit(USER, BIO, BIO + AGE)
    result = pre_commit(project, "run", "migcheck", "--files", USER)
    assert result.code == 1 and drift(project) in result.out, result.output
    result = pre_commit(project, "run", "migcheck", "--files", ".gitignore")
    assert result.code == 0 and "(no files to check)Skipped" in result.out, result.output


OLD_STACK = ["Flask==2.2.5", "Werkzeug==2.2.3", "Flask-SQLAlchemy==2.5.1", "SQLAlchemy==1.4.54",
             "Flask-Migrate==3.1.0"]


def test_isolated_hook_runs_on_an_app_that_pins_an_old_stack(project: Project, hook_repo: Path) -> None:
    # The app's own pins go in additional_dependencies; pip resolves them together with migcheck's
    # floors in pre-commit's virtualenv, and migcheck runs on the old stack.
    user_repo(project, drift=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=hook_repo, check=True, capture_output=True,
                         text=True).stdout.strip()
    project.write(".pre-commit-config.yaml", yaml.safe_dump({"repos": [{
        "repo": str(hook_repo), "rev": rev,
        "hooks": [{"id": "migcheck-isolated", "additional_dependencies": OLD_STACK}]}]}))
    commit_all(project.path)
    result = pre_commit(project, "run", "migcheck-isolated", "--all-files", venv_on_path=False, timeout=600)
    [environment] = (project.path / ".pre-commit-home").glob("repo*/py_env-*")
    installed = subprocess.run([str(next(environment.glob("bin/python*"))), "-c",
                                "import flask_sqlalchemy, sqlalchemy; "
                                "print(flask_sqlalchemy.__version__, sqlalchemy.__version__)"],
                               capture_output=True, text=True)
    assert installed.stdout.split() == ["2.5.1", "1.4.54"], installed.stdout + installed.stderr
    assert result.code == 1, result.output
    assert drift(project) in result.out
