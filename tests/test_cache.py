"""The cache: a warm run resumes from the migrated database and never trusts a stale or bad one."""

from __future__ import annotations

from pathlib import Path

from conftest import Project

BIO = "428a6cc61e6a"
SUMMARY_CACHED = "3 revisions (3 from cache)"


def _cached_files(project: Project) -> list[Path]:
    return sorted((project.path / ".migcheck-cache").glob("*/*/*.sqlite"))


def test_warm_run_resumes_and_still_checks_the_models(project: Project) -> None:
    cold = project.run()
    assert cold.code == 0, cold.output
    assert "from cache" not in cold.out and _cached_files(project)
    warm = project.run()
    assert warm.code == 0 and SUMMARY_CACHED in warm.out, warm.output
    # a model edit (no migration change) is still caught on the cached database
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    drifted = project.run()
    assert drifted.code == 1 and SUMMARY_CACHED in drifted.out, drifted.output
    assert "column `user.age` is in the model but no migration creates it" in drifted.out


def test_editing_an_old_revision_invalidates_the_cache(project: Project) -> None:
    assert project.run().code == 0
    project.replace_downgrade(BIO, "    pass\n")
    result = project.run()
    assert result.code == 1, result.output
    assert "from cache" not in result.out
    assert f"downgrade of `{BIO}` leaves column `user.bio` behind" in result.out


def test_new_revision_is_walked_on_top_of_the_cache(project: Project) -> None:
    assert project.run().code == 0
    project.write("migrations/versions/ddd444_flags.py", '''"""flags"""
from alembic import op
import sqlalchemy as sa

revision = 'ddd444'
down_revision = 'e9e549eb0d5f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('flag', sa.Column('id', sa.Integer(), primary_key=True))


def downgrade():
    pass
''')
    result = project.run("--select", "roundtrip,data")
    assert result.code == 1, result.output
    assert "4 revisions (3 from cache)" in result.out
    assert "downgrade of `ddd444` leaves table `flag` behind" in result.out


def test_findings_of_cached_revisions_are_reported_again(project: Project) -> None:
    project.replace_downgrade(BIO, "    pass\n")
    first, second = project.run("--select", "roundtrip"), project.run("--select", "roundtrip")
    assert first.code == second.code == 1, second.output
    assert SUMMARY_CACHED in second.out
    finding = f"downgrade of `{BIO}` leaves column `user.bio` behind"
    assert finding in first.out and finding in second.out


def test_corrupted_cache_is_rebuilt_not_trusted(project: Project) -> None:
    assert project.run().code == 0
    [cached] = _cached_files(project)
    cached.write_bytes(b"not a database")
    result = project.run()
    assert result.code == 0, result.output
    assert "from cache" not in result.out
    assert cached.read_bytes().startswith(b"SQLite format 3")  # rebuilt by that run
    assert SUMMARY_CACHED in project.run().out


def test_no_cache_flag(project: Project) -> None:
    assert project.run().code == 0
    result = project.run("--no-cache")
    assert result.code == 0 and "from cache" not in result.out, result.output
