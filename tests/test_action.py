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


def run_step(step: dict[str, Any], inputs: dict[str, str], env: dict[str, str], cwd: Path,
             outputs: dict[str, dict[str, str]] | None = None) -> Result:
    """What the runner does for a composite `run:` step: fill in `${{ inputs.x }}` and
    `${{ steps.id.outputs.x }}` (from `outputs`), run bash."""
    defaults = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    values = {f"inputs.{name}": value for name, value in {**defaults, **inputs}.items()}
    values |= {f"steps.{id_}.outputs.{name}": value
               for id_, named in (outputs or {}).items() for name, value in named.items()}
    step_env = {key: EXPRESSION.sub(lambda m: values.get(m.group(1), ""), value)
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


def read_outputs(path: Path) -> dict[str, str]:
    """A $GITHUB_OUTPUT file: `name=value` lines and `name<<DELIMITER` multi-line values."""
    outputs, lines = {}, iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            outputs[name] = "\n".join(iter(lambda: next(lines), delimiter))
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


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
    shutil.copytree(ROOT / "action", action_path / "action", ignore=shutil.ignore_patterns("__pycache__"))
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
    assert set(ACTION["inputs"]) == {"app", "directory", "args", "python", "cache"}
    for name, spec in ACTION["inputs"].items():
        assert spec["description"] and spec["required"] is False, name
    ids = {step["id"] for step in ACTION["runs"]["steps"] if "id" in step}
    for step in ACTION["runs"]["steps"]:
        if "uses" in step:
            continue
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], f"an expression inside the script of {step['name']!r}"
        for value in step.get("env", {}).values():
            [expression] = EXPRESSION.findall(value)
            kind, name, *rest = expression.split(".")
            assert ((kind, rest) == ("inputs", []) and name in ACTION["inputs"]
                    or kind == "steps" and name in ids and rest[0] == "outputs"), expression
    assert '"$GITHUB_ACTION_PATH"' in STEPS["Install migcheck"]["run"]


def test_action_restores_and_saves_the_cache_with_actions_cache_unless_turned_off() -> None:
    assert ACTION["inputs"]["cache"]["default"] == "true"
    key_step = STEPS["Compute migcheck's cache key"]
    restore, save = STEPS["Restore migcheck's cache"], STEPS["Save migcheck's cache"]
    steps = list(STEPS)
    assert steps.index("Install migcheck") < steps.index(key_step["name"]) < steps.index(restore["name"])
    assert steps.index(restore["name"]) < steps.index("Run migcheck") < steps.index(save["name"])
    assert restore["uses"] == "actions/cache/restore@v4" and save["uses"] == "actions/cache/save@v4"
    outputs = "${{ steps.cache-key.outputs.%s }}"
    assert restore["with"] == {"path": outputs % "dir", "key": outputs % "key",
                               "restore-keys": outputs % "restore-keys"}
    assert save["with"] == {"path": outputs % "dir", "key": outputs % "key"}
    assert STEPS["Run migcheck"]["env"]["MIGCHECK_CACHE_DIR"] == outputs % "dir"
    for step in (key_step, restore):
        assert step["if"] == "inputs.cache == 'true'"
    # Saved after a run with findings too (the job has failed by then), never after an exact hit.
    assert save["if"].startswith("always() && inputs.cache == 'true' && ")
    assert "steps.cache-restore.outputs.cache-hit != 'true'" in save["if"]


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


def cache_key(project: Project, runner: dict[str, str], inputs: dict[str, str] | None = None
              ) -> dict[str, str]:
    """Run the key step as the runner would; its outputs."""
    output = Path(runner["RUNNER_TEMP"]) / f"output-{os.getpid()}"
    output.write_text("")
    result = run_step(STEPS["Compute migcheck's cache key"], inputs or {},
                      {**action_env(project, runner, output.parent / "summary.md"),
                       "GITHUB_OUTPUT": str(output)}, project.path)
    assert result.code == 0, result.output
    return read_outputs(output)


def test_cache_key_is_the_same_for_the_same_history_and_new_for_a_changed_revision(
        project: Project, runner: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    first = cache_key(project, runner)
    assert Path(first["dir"]) == Path(runner["RUNNER_TEMP"]) / "migcheck-cache"
    project.write("requirements.txt", "Flask-Migrate>=4\n")
    with_requirements = cache_key(project, runner)
    # The same history and dependencies in another checkout (another path): the same key.
    other = Project(tmp_path_factory.mktemp("elsewhere") / "checkout")
    shutil.copytree(project.path, other.path, ignore=shutil.ignore_patterns(".tmp", ".migcheck-cache"))
    assert cache_key(other, runner) == with_requirements
    # A model edit changes no migration: the entry stays good, the key stays the same.
    project.edit(USER, BIO, BIO + "    age = db.Column(db.Integer)\n")
    assert cache_key(project, runner) == with_requirements

    revision = project.revision_file("e9e549eb0d5f")
    project.edit(revision, "def downgrade():", "# a comment\ndef downgrade():")
    changed = cache_key(project, runner)
    assert changed["key"] != with_requirements["key"]
    assert changed["restore-keys"] == with_requirements["restore-keys"]
    nearest, same_python = changed["restore-keys"].split("\n")
    assert changed["key"].startswith(nearest) and nearest.startswith(same_python)
    assert with_requirements["key"].startswith(nearest)  # what a run of the old history saved
    assert first["key"].startswith(same_python) and not first["key"].startswith(nearest)
    assert f"-py{sys.version_info[0]}.{sys.version_info[1]}-" in same_python


def test_cache_key_follows_the_directory_input_and_config(project: Project, runner: dict[str, str]) -> None:
    shutil.move(project.path / "migrations", project.path / "db" / "migrations")
    found = cache_key(project, runner)  # found by its env.py and versions/
    assert cache_key(project, runner, {"directory": "db/migrations"}) == found
    project.write("pyproject.toml", '[tool.migcheck]\ndirectory = "db/migrations"\n')
    configured = cache_key(project, runner)
    project.append("db/migrations/env.py", "# edited\n")
    assert cache_key(project, runner)["key"] != configured["key"]


def test_a_second_run_of_the_action_resumes_from_the_restored_cache(project: Project, runner: dict[str, str],
                                                                    tmp_path: Path) -> None:
    outputs = {"cache-key": cache_key(project, runner)}
    cache_dir = Path(outputs["cache-key"]["dir"])
    inputs = {"app": "sample_app:app"}
    env = action_env(project, runner, tmp_path / "summary.md")
    env.pop("MIGCHECK_CACHE_DIR")  # the action sets it
    cold = run_step(STEPS["Run migcheck"], inputs, env, project.path, outputs)
    assert cold.code == 0, cold.output
    assert "(sample_app, 3 revisions, checks:" in cold.out
    assert any(cache_dir.glob("*/*/manifest.json"))  # what actions/cache/save uploads
    project.edit(USER, BIO, BIO + "    age = db.Column(db.Integer)\n")  # the next commit: a model edit
    warm = run_step(STEPS["Run migcheck"], inputs, env, project.path, outputs)
    assert warm.code == 1, warm.output
    assert "(sample_app, 3 revisions (3 from cache), checks:" in warm.out
    assert "drift: column `user.age` is in the model" in warm.out


def test_readme_pull_request_workflow_uses_the_actions_inputs_and_uploads_its_sarif() -> None:
    section = (ROOT / "README.md").read_text().split("## GitHub Actions\n", 1)[1].split("\n## ", 1)[0]
    workflow = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert workflow[True] == "pull_request"  # YAML 1.1 reads the key `on` as true
    steps = workflow["jobs"]["migcheck"]["steps"]
    [ours] = [step for step in steps if str(step.get("uses", "")).endswith("/migcheck@v1")]
    assert set(ours["with"]) <= set(ACTION["inputs"])
    args = ours["with"]["args"].split()
    [upload] = [step for step in steps if step.get("uses") == "github/codeql-action/upload-sarif@v3"]
    assert args[args.index("--format") + 1] == "sarif"
    assert upload["with"]["sarif_file"] == args[args.index("--output") + 1]
    assert workflow["jobs"]["migcheck"]["permissions"]["security-events"] == "write"
