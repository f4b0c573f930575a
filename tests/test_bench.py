"""The benchmark's generator: its projects pass migcheck, --drift and --bad-downgrades make them fail,
output is stable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, Project


def generate(path: Path, *flags: str) -> Project:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(path),
                           "--revisions", "5", "--models", "3", *flags],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return Project(path)


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts}


def test_generated_project_passes_and_is_deterministic(tmp_path: Path) -> None:
    project = generate(tmp_path / "one")
    assert len(list((project.path / "migrations" / "versions").glob("*.py"))) == 5
    assert files(project.path) == files(generate(tmp_path / "two").path)
    result = project.run(app="benchapp:app")
    assert result.code == 0, result.output
    assert "no problems" in result.out and "5 revisions" in result.out
    assert not project.configured_db.exists()


def test_drift_flag_leaves_one_column_without_a_migration(tmp_path: Path) -> None:
    project = generate(tmp_path, "--drift")
    models = "benchapp/models/part_2.py"  # the last of the 3 models
    line = project.line_of(models, "drift_note = db.Column(db.String(32))")
    result = project.run(app="benchapp:app")
    assert result.code == 1, result.output
    assert f"{models}:{line}: drift: column `model_2.drift_note`" in result.out
    assert not project.configured_db.exists()


def test_bad_downgrades_flag_makes_every_round_trip_fail(tmp_path: Path) -> None:
    project = generate(tmp_path, "--bad-downgrades")
    result = project.run("--select", "roundtrip", "--no-cache", app="benchapp:app")
    assert result.code == 1, result.output
    versions = sorted((project.path / "migrations" / "versions").glob("*.py"))
    for path in versions:
        revision = path.name.split("_")[0]
        assert f"downgrade of `{revision}` leaves" in result.out, revision
