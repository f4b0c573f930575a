"""A warm run takes plain revision files from the store instead of importing them (project/revisions.py),
and every file's import scan from its own store (project/dependencies.py): it reports what a run that
imports and parses every file reports, whatever was edited since."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Project, Result
from test_cache import FLAG_MODEL, HELPED_REVISION, HELPERS, READS_FLAGS

COMMENTS = "e9e549eb0d5f"


def _store(project: Project, kind: str) -> Path:
    [store] = (project.path / ".migcheck-cache" / kind).glob("*.json")
    return store


def _kept(project: Project, kind: str) -> dict:
    return json.loads(json.loads(_store(project, kind).read_text())["content"])


def _warm(project: Project) -> None:
    """A cold run, then a warm one that takes every revision file from the store."""
    assert project.run().code == 0
    assert len(_kept(project, "revisions")["files"]) == 3
    warm = project.run()
    assert warm.code == 0 and "3 revisions (3 from cache)" in warm.out, warm.output


def _same_as_importing_every_file(project: Project) -> Result:
    """The run's report, asserted equal to that of a run with no cache (which imports every file)."""
    result = project.run("--format", "json")
    fresh = project.run("--no-cache", "--format", "json")
    assert (result.code, result.err) == (fresh.code, fresh.err), result.output + fresh.output
    if result.out:
        report, expected = json.loads(result.out), json.loads(fresh.out)
        assert report["findings"] == expected["findings"], result.out
    return result


def test_a_down_revision_edited_after_a_warm_run_is_read(project: Project) -> None:
    _warm(project)
    path = project.revision_file(COMMENTS)
    project.edit(path, "down_revision = '428a6cc61e6a'", "down_revision = 'f00d'")
    result = _same_as_importing_every_file(project)
    [finding] = json.loads(result.out)["findings"]
    assert (finding["rule"], finding["path"], finding["line"]) == (
        "graph-missing-revision", path, project.line_of(path, "down_revision = 'f00d'"))


def test_a_duplicate_id_added_after_a_warm_run_is_reported(project: Project) -> None:
    _warm(project)
    path = project.revision_file(COMMENTS)
    project.write("migrations/versions/aaa_copy.py", project.read(path))
    result = _same_as_importing_every_file(project)
    assert [f["rule"] for f in json.loads(result.out)["findings"]] == ["graph-duplicate-revision"] * 2


def test_a_revision_broken_after_a_warm_run_fails_as_alembic_loads_it(project: Project) -> None:
    _warm(project)
    project.edit(project.revision_file(COMMENTS), "down_revision = '428a6cc61e6a'",
                 "down_revision = '428a6cc61e6a' + sa.nothing")
    result = _same_as_importing_every_file(project)
    assert result.code == 2 and "AttributeError" in result.err, result.output


def test_a_revision_that_imports_a_model_module_is_imported(project: Project) -> None:
    """The model module only this revision imports (at module level) reaches the metadata as it does
    when Alembic imports the file: the drift check reports its table on the warm run too."""
    project.write("sample_app/flags.py", "from sample_app.extensions import db\n" + FLAG_MODEL)
    project.edit(project.revision_file(COMMENTS), "import sqlalchemy as sa\n",
                 "import sqlalchemy as sa\n\nfrom sample_app.flags import Flag  # noqa: F401\n")
    cold = project.run()
    assert cold.code == 1, cold.output
    assert "table `flag` is in the models but no migration creates it" in cold.out
    warm = _same_as_importing_every_file(project)
    assert json.loads(warm.out)["cached"] == 3


def test_a_tampered_store_is_not_trusted(project: Project) -> None:
    _warm(project)
    store = _store(project, "revisions")
    store.write_text(store.read_text().replace("428a6cc61e6a", "f00d0000beef"))
    result = project.run()
    assert result.code == 0 and "3 revisions (3 from cache)" in result.out, result.output
    assert "f00d0000beef" not in store.read_text()  # replaced by that run's
    assert len(_kept(project, "revisions")["files"]) == 3


def test_a_helper_edited_after_a_warm_run_to_read_the_environment_is_seen(project: Project) -> None:
    project.write("migrations/versions/ddd444_flags.py", HELPED_REVISION)
    project.write("sample_app/migration_helpers.py", HELPERS)
    project.write("sample_app/naming.py", 'FLAG_TABLE = "flag"\n')
    project.append("sample_app/models/user.py", FLAG_MODEL)
    assert project.run().code == 0
    warm = project.run()
    assert warm.code == 0 and "4 revisions (4 from cache)" in warm.out, warm.output
    project.edit("sample_app/migration_helpers.py", "def create_flags():\n",
                 "def create_flags():\n" + READS_FLAGS)
    result = project.run()
    assert result.code == 0 and "the cache keeps nothing from revision `ddd444` on" in result.out, \
        result.output
