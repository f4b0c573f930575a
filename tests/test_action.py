"""The GitHub Action (action.yml) run step by step with bash, as the runner would, and ci.yml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, Project, Result

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
STEPS = {step["name"]: step for step in ACTION["runs"]["steps"]}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
USER = "sample_app/models/user.py"
BIO = "    bio = db.Column(db.Text)\n"


def run_step(step: dict[str, Any], inputs: dict[str, str], env: dict[str, str], cwd: Path) -> Result:
    """What the runner does for a composite `run:` step: fill in `${{ inputs.x }}`, run bash."""
    defaults = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    values = {**defaults, **inputs}
    step_env = {key: EXPRESSION.sub(lambda m: values[m.group(1).removeprefix("inputs.")], value)
                for key, value in step.get("env", {}).items()}
    script = cwd.parent / f"step-{os.getpid()}.sh"
    script.write_text(step["run"])
    try:
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=cwd, env={**env, **step_env}, capture_output=True, text=True,
                              timeout=300)
    finally:
        script.unlink()
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A checkout of the action, and a job Python that has the app's dependencies but no migcheck.

    The job's Python sees this venv's packages through a .pth file (the user's dependencies,
    "already there"), so the install step pip-installs only migcheck itself, for real.
    """
    base = tmp_path_factory.mktemp("runner")
    action_path = base / "action"
    shutil.copytree(ROOT / "migcheck", action_path / "migcheck",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "action.yml"):
        shutil.copy(ROOT / name, action_path / name)
    job_python = base / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(job_python)], check=True)
    site = Path(subprocess.run([job_python / "bin" / "python", "-c",
                                "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "the_jobs_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    env = {"PATH": f"{job_python / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "GITHUB_ACTIONS": "true", "GITHUB_ACTION_PATH": str(action_path), "RUNNER_TEMP": str(base)}
    installed = run_step(STEPS["Install migcheck"], {"python": str(job_python / "bin" / "python")},
                         {**os.environ, **env}, base)
    assert installed.code == 0, installed.output
    where = subprocess.run([job_python / "bin" / "python", "-c", "import migcheck; print(migcheck.__file__)"],
                           capture_output=True, text=True, cwd=base)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # installed, not borrowed
    return env


def action_env(project: Project, runner: dict[str, str], summary: Path) -> dict[str, str]:
    return project.env({**runner, "GITHUB_STEP_SUMMARY": str(summary),
                        "GITHUB_WORKSPACE": str(project.path)})


def test_action_metadata_passes_inputs_through_env_only() -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert set(ACTION["inputs"]) == {"app", "directory", "args", "python"}
    for name, spec in ACTION["inputs"].items():
        assert spec["description"] and spec["required"] is False, name
    for step in ACTION["runs"]["steps"]:
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], f"an expression inside the script of {step['name']!r}"
        for value in step.get("env", {}).values():
            [expression] = EXPRESSION.findall(value)
            assert expression.removeprefix("inputs.") in ACTION["inputs"], expression
    assert '"$GITHUB_ACTION_PATH"' in STEPS["Install migcheck"]["run"]


def test_action_annotates_drift_and_writes_the_summary(project: Project, runner: dict[str, str],
                                                      tmp_path: Path) -> None:
    project.edit(USER, BIO, BIO + "    age = db.Column(db.Integer)\n    nick = db.Column(db.Integer)\n")
    summary = tmp_path / "summary.md"
    summary.touch()
    result = run_step(STEPS["Run migcheck"], {
        "app": "sample_app:app",
        "python": str(Path(runner["PATH"].split(os.pathsep)[0]) / "python"),
        # quoted like in a workflow file: split as a shell would, never run by one
        "args": """--select 'graph,upgrade,drift' --ignore "drift-add-column:user.nick" """,
    }, action_env(project, runner, summary), project.path)
    assert result.code == 1, result.output
    line = project.line_of(USER, "age = db.Column")
    assert (f"::error file={USER},line={line},title=migcheck%3A drift-add-column::column `user.age` is "
            "in the model but no migration creates it%0Afix: ") in result.out
    assert "user.nick" not in result.out
    assert f"{USER}:{line}: drift: column `user.age` is in the model" in result.out  # the plain report
    assert "migcheck: 1 error, 1 suppressed" in result.out
    text = summary.read_text()
    assert text.startswith("### migcheck: 1 error\n")
    assert f"| error | `{USER}:{line}` | `drift-add-column` | column `user.age` is in the model" in text


def test_action_passes_on_a_clean_app_with_default_inputs(project: Project, runner: dict[str, str],
                                                          tmp_path: Path) -> None:
    # The app comes from [tool.migcheck]; `python` is the job's python on PATH.
    project.write("pyproject.toml", '[tool.migcheck]\napp = "sample_app:app"\nskip = ["roundtrip"]\n')
    summary = tmp_path / "summary.md"
    result = run_step(STEPS["Run migcheck"], {}, action_env(project, runner, summary), project.path)
    assert result.code == 0, result.output
    assert "::" not in result.out
    assert "migcheck: no problems" in result.out
    assert summary.read_text().startswith("### migcheck: no problems\n")


def test_action_rejects_unbalanced_quotes_in_args(project: Project, runner: dict[str, str],
                                                 tmp_path: Path) -> None:
    result = run_step(STEPS["Run migcheck"], {"args": "--select 'drift"},
                      action_env(project, runner, tmp_path / "summary.md"), project.path)
    assert result.code == 2, result.output
    assert "migcheck: error: the action's args input: No closing quotation" in result.err


def test_ci_workflow_tests_every_python_and_lane_with_servers_and_runs_the_action() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    tests = workflow["jobs"]["tests"]
    matrix = tests["strategy"]["matrix"]
    assert matrix["lane"] == ["current"] and matrix["python"] == ["3.10", "3.11", "3.12", "3.13"]
    lanes = {path.stem for path in (ROOT / "lanes").glob("*.txt")}
    assert lanes == {"current", "legacy", "oldest"}
    assert {"current"} | {extra["lane"] for extra in matrix["include"]} == lanes
    assert set(tests["services"]) == {"postgres", "mariadb"}
    assert tests["services"]["postgres"]["ports"] == ["5432:5432"]
    assert tests["services"]["mariadb"]["ports"] == ["3306:3306"]
    assert tests["env"]["MIGCHECK_REQUIRE_SERVERS"] == "1"
    commands = "\n".join(step.get("run", "") for step in tests["steps"])
    assert "nox -s ${{ matrix.lane }}" in commands
    uses = [step for step in workflow["jobs"]["action"]["steps"] if step.get("uses") == "./"]
    assert uses and all(step["with"]["app"] == "sample_app:app" for step in uses)
