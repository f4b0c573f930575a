"""The cache: a warm run resumes from the migrated database and never trusts a stale or bad one."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
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
    assert f"downgrade of `{BIO}` leaves column `post.view_count` behind; the same for 1 more: `user.bio`" \
        in result.out


def test_new_revision_is_walked_on_top_of_the_cache(project: Project) -> None:
    assert project.run("--select", "roundtrip").code == 0
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
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert "4 revisions (3 from cache)" in result.out
    assert "downgrade of `ddd444` leaves table `flag` behind" in result.out


def test_findings_of_cached_revisions_are_reported_again(project: Project) -> None:
    project.replace_downgrade(BIO, "    pass\n")
    first, second = project.run("--select", "roundtrip"), project.run("--select", "roundtrip")
    assert first.code == second.code == 1, second.output
    assert SUMMARY_CACHED in second.out
    finding = f"downgrade of `{BIO}` leaves column `post.view_count` behind; the same for 1 more: `user.bio`"
    assert finding in first.out and finding in second.out


def test_reupgrade_is_part_of_the_key(project: Project) -> None:
    # A walk that rolled its downgrades back never re-ran an upgrade: --reupgrade walks again.
    path = project.revision_file("1f5ecceb0b09")
    project.edit(path, "def upgrade():\n", "_RAN = []\n\n\ndef upgrade():\n    if _RAN:\n"
                 "        raise RuntimeError('ran twice')\n    _RAN.append(1)\n")
    assert project.run("--select", "roundtrip").code == 0
    again = project.run("--select", "roundtrip", "--reupgrade")
    assert again.code == 1 and "from cache" not in again.out, again.output
    assert "re-upgrade of `1f5ecceb0b09` after its downgrade fails: RuntimeError: ran twice" in again.out


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


HELPED_REVISION = '''"""flags, with helpers from the app"""
from alembic import op

from sample_app.migration_helpers import create_flags

revision = 'ddd444'
down_revision = 'e9e549eb0d5f'
branch_labels = None
depends_on = None


def upgrade():
    create_flags()


def downgrade():
    from sample_app.migration_helpers import drop_flags  # imported when it runs
    drop_flags()
'''

HELPERS = '''from alembic import op
import sqlalchemy as sa

from .naming import FLAG_TABLE


def create_flags():
    op.create_table(FLAG_TABLE, sa.Column('id', sa.Integer(), primary_key=True))


def drop_flags():
    op.drop_table(FLAG_TABLE)
'''

FLAG_MODEL = '''

class Flag(db.Model):
    __tablename__ = "flag"
    id = db.Column(db.Integer, primary_key=True)
'''


def _with_helpers(project: Project) -> None:
    """A revision whose upgrade and downgrade are project code, two imports away."""
    project.write("migrations/versions/ddd444_flags.py", HELPED_REVISION)
    project.write("sample_app/migration_helpers.py", HELPERS)
    project.write("sample_app/naming.py", 'FLAG_TABLE = "flag"\n')
    project.append("sample_app/models/user.py", FLAG_MODEL)


def test_code_a_revision_imports_is_part_of_the_key(project: Project) -> None:
    """Cached pass, fresh fail: editing a module the revision imports must not reuse the entry."""
    _with_helpers(project)
    assert project.run().code == 0
    warm = project.run()
    assert warm.code == 0 and "4 revisions (4 from cache)" in warm.out, warm.output
    # the downgrade (a function-level import) now forgets the table
    project.edit("sample_app/migration_helpers.py", "    op.drop_table(FLAG_TABLE)", "    pass")
    result = project.run()
    assert result.code == 1, result.output
    assert "downgrade of `ddd444` leaves table `flag` behind" in result.out
    assert "from cache" not in result.out


def test_fixing_imported_code_clears_a_cached_failure(project: Project) -> None:
    """Cached fail, fresh pass: through a module the revision's import imports (naming.py)."""
    _with_helpers(project)
    project.edit("sample_app/migration_helpers.py", "    op.drop_table(FLAG_TABLE)",
                 "    op.drop_table('flags')")
    project.write("sample_app/naming.py", 'FLAG_TABLE = "flags"\n')
    project.edit("sample_app/models/user.py", '__tablename__ = "flag"', '__tablename__ = "flags"')
    # the upgrade makes `flags` and the downgrade drops it: passes; now rename to `flag`
    assert project.run().code == 0
    project.write("sample_app/naming.py", 'FLAG_TABLE = "flag"\n')
    project.edit("sample_app/models/user.py", '__tablename__ = "flags"', '__tablename__ = "flag"')
    failing = project.run()
    assert failing.code == 1 and "downgrade of `ddd444`" in failing.out, failing.output
    project.edit("sample_app/migration_helpers.py", "    op.drop_table('flags')",
                 "    op.drop_table(FLAG_TABLE)")
    fixed = project.run()
    assert fixed.code == 0 and "from cache" not in fixed.out, fixed.output


READS_FLAGS = "    import os\n    if os.environ.get('FLAGS', '1') != '1':\n        return\n"


@pytest.mark.parametrize("reader", ["revision", "helper"])
def test_revision_reading_runtime_state_is_not_cached(project: Project, reader: str) -> None:
    """What a revision reads while it runs (configuration, environment, files) is not in any key,
    whether the revision reads it or a project module it imports does."""
    revision, helpers = HELPED_REVISION, HELPERS
    if reader == "revision":
        revision = revision.replace("def upgrade():\n", "def upgrade():\n" + READS_FLAGS)
    else:
        helpers = helpers.replace("def create_flags():\n", "def create_flags():\n" + READS_FLAGS)
    project.write("migrations/versions/ddd444_flags.py", revision)
    project.write("sample_app/migration_helpers.py", helpers)
    project.write("sample_app/naming.py", 'FLAG_TABLE = "flag"\n')
    project.append("sample_app/models/user.py", FLAG_MODEL)
    first = project.run()
    assert first.code == 0 and "from cache" not in first.out, first.output
    # Once, with where it reads: so users know why every run walks it again.
    path = "migrations/versions/ddd444_flags.py" if reader == "revision" else \
        "sample_app/migration_helpers.py"
    line = project.line_of(path, "os.environ.get")
    through = "" if reader == "revision" else "imports sample_app/migration_helpers.py, which "
    assert first.out.count("the cache keeps nothing") == 1, first.out
    assert (f"{path}:{line}: upgrade: info: the cache keeps nothing from revision `ddd444` on: it "
            f"{through}reads `environ` (the app's configuration, the environment or a file, which no key "
            "covers), so every run walks it and the revisions after it again") in first.out
    assert "no problems (1 info)" in first.out
    assert "the cache keeps nothing" not in project.run("--no-cache").out
    result = project.run(env={"FLAGS": "0"})  # no table to drop: the downgrade fails
    assert result.code == 1 and "from cache" not in result.out, result.output
    assert "downgrade of `ddd444` raises OperationalError: no such table: flag" in result.out


def _manifest(project: Project) -> Path:
    [manifest] = (project.path / ".migcheck-cache").glob("*/*/manifest.json")
    return manifest


def _flip(path: Path, pattern: bytes, replacement: bytes) -> None:
    """Change what matches `pattern` in a file, as flipped bits on disk would."""
    data, count = re.subn(pattern, replacement, path.read_bytes())
    assert count, f"{pattern!r} not in {path}"
    path.write_bytes(data)


def test_manifest_with_a_flipped_severity_is_evicted(project: Project) -> None:
    project.replace_downgrade(BIO, "    pass\n")
    fresh = project.run("--select", "roundtrip", "--format", "json")
    assert fresh.code == 1, fresh.output
    _flip(_manifest(project), rb"(?<=severity)(\\?\"): (\\?\")error", rb'\1: \2errOr')
    result = project.run("--select", "roundtrip", "--format", "json")
    assert result.code == 1, result.output  # not 0 with an error in the report
    report = json.loads(result.out)
    assert report["cached"] == 0 and report == {**json.loads(fresh.out), "seconds": report["seconds"]}
    assert "errOr" not in _manifest(project).read_text()  # rebuilt by that run
    text = project.run("--select", "roundtrip")
    assert text.code == 1 and SUMMARY_CACHED in text.out, text.output


def test_manifest_with_a_flipped_line_number_is_evicted(project: Project) -> None:
    path = project.replace_downgrade(BIO, "    pass\n")
    line = project.line_of(path, "def downgrade")
    assert project.run("--select", "roundtrip").code == 1
    _flip(_manifest(project), rb"(?<=line)(\\?\"): " + str(line).encode(), rb"\1: 7")
    result = project.run("--select", "roundtrip")
    assert result.code == 1, result.output
    assert f"{path}:{line}: roundtrip: downgrade of `{BIO}`" in result.out
    assert "from cache" not in result.out
    assert SUMMARY_CACHED in project.run("--select", "roundtrip").out


def test_entry_without_a_loadable_manifest_is_evicted(project: Project) -> None:
    assert project.run().code == 0
    manifest = _manifest(project)
    manifest.write_text('{"format": 1}')
    assert "from cache" not in project.run().out
    assert SUMMARY_CACHED in project.run().out


def test_no_home_directory_costs_a_warning_not_the_run(project: Project) -> None:
    """HOME unset and a uid without a passwd entry: no default cache location, but a run."""
    uid = 54321
    try:
        pwd.getpwuid(uid)
        pytest.skip(f"uid {uid} has a passwd entry here")
    except KeyError:
        pass
    if os.geteuid() != 0:
        pytest.skip("needs root, to run migcheck with a real uid that has no passwd entry")
    # Only the real uid changes (the home directory is looked up by it; os.access() checks it too):
    # a copy of the project where every user may read it.
    shared = Path(tempfile.mkdtemp(prefix="migcheck-nohome-"))
    try:
        shared.chmod(0o755)
        copy = Project(shared / "project")
        shutil.copytree(project.path, copy.path)
        for directory in [copy.path, *(p for p in copy.path.rglob("*") if p.is_dir())]:
            directory.chmod(0o755)
        env = {k: v for k, v in copy.env().items()
               if k not in ("HOME", "XDG_CACHE_HOME", "MIGCHECK_CACHE_DIR")}
        done = subprocess.run([sys.executable, "-m", "migcheck", "--app=sample_app:app"],
                              cwd=copy.path, env=env, capture_output=True, text=True, timeout=120,
                              preexec_fn=lambda: os.setreuid(uid, 0))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no problems" in done.stdout
        assert done.stderr.count("migcheck: warning:") == 1 and "cache" in done.stderr, done.stderr
        assert not any(copy.tmp.iterdir()), "scratch area left behind"
    finally:
        shutil.rmtree(shared)


def test_cache_directory_that_is_a_file_costs_a_warning(project: Project) -> None:
    blocker = project.write("cache-file", "not a directory\n")
    for _ in range(2):
        result = project.run(env={"MIGCHECK_CACHE_DIR": str(blocker)})
        assert result.code == 0 and "no problems" in result.out, result.output
        assert "migcheck: warning:" in result.err and "cache" in result.err
    assert blocker.read_text() == "not a directory\n"


SIZED_REVISION = '''"""post.subtitle, sized from a data file"""
from alembic import op
import sqlalchemy as sa
{imports}

revision = "eee555"
down_revision = "e9e549eb0d5f"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("post", sa.Column("subtitle", sa.String({size})))


def downgrade():
    with op.batch_alter_table("post") as batch_op:
        batch_op.drop_column("subtitle")
'''

# How the revision reads the data file (imports, the size, code after downgrade()): none of these
# is a name the source scan knows.
SIZE_READERS = {
    "pkgutil.get_data": ("import json, pkgutil",
                         'json.loads(pkgutil.get_data("sample_app", "sizes.json"))["subtitle"]', ""),
    "ConfigParser.read": ("import configparser", 'int(_sizes()["subtitle"])',
                          "\n\ndef _sizes():\n    parser = configparser.ConfigParser()\n"
                          '    parser.read("sample_app/sizes.ini")\n    return parser["sizes"]\n'),
    "through the package's __init__": ("import sample_app", "sample_app.sizes.subtitle()", ""),
}


@pytest.mark.parametrize("reader", sorted(SIZE_READERS))
def test_data_file_a_revision_reads_is_part_of_the_key(project: Project, reader: str) -> None:
    """Cached verdict = fresh verdict: the column's size comes from a file the revision reads."""
    imports, size, more = SIZE_READERS[reader]
    project.write("migrations/versions/eee555_subtitle.py",
                  SIZED_REVISION.format(imports=imports, size=size) + more)
    project.write("sample_app/sizes.py", "import json, os\n\n\ndef subtitle():\n"
                  "    with open(os.path.join(os.path.dirname(__file__), 'sizes.json')) as file:\n"
                  "        return json.load(file)['subtitle']\n")
    project.append("sample_app/__init__.py", "\nfrom . import sizes  # noqa: E402\n")
    project.edit("sample_app/models/blog.py", "    body = db.Column(db.Text, nullable=False, default=\"\")\n",
                 "    body = db.Column(db.Text, nullable=False, default=\"\")\n"
                 "    subtitle = db.Column(db.String(50))\n")

    def sizes(value: int) -> None:
        project.write("sample_app/sizes.json", json.dumps({"subtitle": value}))
        project.write("sample_app/sizes.ini", f"[sizes]\nsubtitle = {value}\n")

    sizes(50)
    first = project.run()
    assert first.code == 0, first.output
    warm = project.run()
    assert warm.code == 0 and "4 revisions (4 from cache)" in warm.out, warm.output
    sizes(80)
    fresh = project.run("--no-cache")
    assert fresh.code == 1, fresh.output
    cached = project.run()
    assert cached.code == 1, cached.output
    assert cached.out.splitlines()[0] == fresh.out.splitlines()[0]


def test_a_revision_that_catches_its_own_error_is_cached(project: Project) -> None:
    path = project.add_revision("5cb310101a1f", "e9e549eb0d5f", """
        try:
            op.drop_column('post', 'legacy_flag')  # 1.x installs had it
        except Exception:
            pass
        """, doc="drop legacy flag")
    caught = f"{path}:{project.line_of(path, 'op.drop_column')}: upgrade: info: upgrade of `5cb310101a1f` " \
             "caught OperationalError: "
    cold = project.run("--select", "upgrade,roundtrip")
    assert cold.code == 0 and caught in cold.out, cold.output
    warm = project.run("--select", "upgrade,roundtrip")
    assert warm.code == 0 and "4 revisions (4 from cache)" in warm.out, warm.output
    assert caught in warm.out
