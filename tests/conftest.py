"""Tests drive the real `migcheck` command on temp copies of sample_app + migrations."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from servers import drop_cache_databases, mysql, postgres, server  # noqa: F401  (fixtures: servers)

ROOT = Path(__file__).resolve().parent.parent


class Result(NamedTuple):
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err

    @property
    def error(self) -> str:
        """stderr without the note that the run dropped scratch databases of killed runs: on a shared
        server any run may reclaim those another test left on purpose (tests/test_faults.py)."""
        return "".join(line for line in self.err.splitlines(keepends=True)
                       if not re.match(r"migcheck: dropped \d+ scratch database\(s\) that runs killed", line))


class Project:
    """A copy of sample_app and its migrations in a temp dir, to mutate and check."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The database the app is configured with: migcheck must never create or touch it.
        self.configured_db = path / "configured.sqlite"
        # TMPDIR for the runs: migcheck's scratch area goes here and must be gone after every run.
        self.tmp = path / ".tmp"

    def read(self, relpath: str) -> str:
        return (self.path / relpath).read_text()

    def write(self, relpath: str, text: str) -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def edit(self, relpath: str, old: str, new: str) -> None:
        text = self.read(relpath)
        assert old in text, f"{old!r} not in {relpath}"
        self.write(relpath, text.replace(old, new, 1))

    def append(self, relpath: str, text: str) -> None:
        self.write(relpath, self.read(relpath) + text)

    def drop_naming_convention(self) -> None:
        """sample_app without its MetaData naming convention, as many apps are: autogenerate then
        writes `None` for a constraint the models leave unnamed."""
        self.edit("sample_app/extensions.py",
                  "SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))", "SQLAlchemy()")

    def line_of(self, relpath: str, needle: str) -> int:
        """1-based line number of the first line containing `needle`."""
        for number, line in enumerate(self.read(relpath).splitlines(), 1):
            if needle in line:
                return number
        raise AssertionError(f"{needle!r} not in {relpath}")

    def revision_file(self, revision: str) -> str:
        [path] = (self.path / "migrations" / "versions").glob(f"{revision}_*.py")
        return str(path.relative_to(self.path))

    def add_revision(self, revision: str, down_revision: str | tuple[str, ...] | None, upgrade: str,
                     downgrade: str = "pass", doc: str = "new revision") -> str:
        """Write a revision file (`upgrade` and `downgrade`: the functions' bodies, indented or not);
        returns its path."""
        slug = re.sub(r"\W+", "_", doc.lower()).strip("_")
        path = f"migrations/versions/{revision}_{slug}.py"
        body = {name: textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")
                for name, code in (("upgrade", upgrade), ("downgrade", downgrade))}
        self.write(path, f'''"""{doc}"""
from alembic import op
import sqlalchemy as sa

revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade():
{body["upgrade"]}


def downgrade():
{body["downgrade"]}
''')
        return path

    def replace_downgrade(self, revision: str, body: str) -> str:
        """Give a revision a new downgrade() (the code after `def downgrade():`); returns its path."""
        path = self.revision_file(revision)
        text = self.read(path)
        self.write(path, text[: text.index("def downgrade")] + f"def downgrade():\n{body}")
        return path

    def blocking(self, *modules: str) -> dict[str, str]:
        """Environment variables under which these modules cannot be imported, as if not installed."""
        for module in modules:
            blocked = self.path / "blocked" / module
            blocked.mkdir(parents=True, exist_ok=True)
            (blocked / "__init__.py").write_text(f"raise ImportError('{module} is not installed here')\n")
        return {"PYTHONPATH": str(self.path / "blocked")}

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment migcheck runs in: the app's database is the one it must never touch."""
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("FLASK_", "MIGCHECK_", "GITHUB_")) and k not in (
                        "DATABASE_URL", "TEST_DATABASE_URL", "NO_COLOR", "FORCE_COLOR")}
        full_env.update({"DATABASE_URL": f"sqlite:///{self.configured_db}",
                         "MIGCHECK_CACHE_DIR": str(self.path / ".migcheck-cache"),
                         "TEST_DATABASE_URL": f"sqlite:///{self.configured_db}",
                         "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1", "TMPDIR": str(self.tmp)})
        full_env.update(extra or {})
        self.tmp.mkdir(exist_ok=True)
        return full_env

    def run(self, *args: str, env: dict[str, str] | None = None, app: str | None = "sample_app:app",
            timeout: float = 120, cwd: str = ".") -> Result:
        command = [sys.executable, "-m", "migcheck", *([f"--app={app}"] if app else []), *args]
        done = subprocess.run(command, cwd=self.path / cwd, env=self.env(env), capture_output=True,
                              text=True, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(autouse=True)
def _no_cache_databases_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Drop the cache databases a test's --db-url runs kept on the server (their manifests are in
    its temporary directory, which outlives them by nothing: nothing else would ever use them)."""
    tmp_path = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp_path is not None:
        drop_cache_databases([*tmp_path.glob(".migcheck-cache"), *tmp_path.glob("*/.migcheck-cache")])


@pytest.fixture
def project(tmp_path: Path) -> Project:
    ignore = shutil.ignore_patterns("__pycache__", "*.sqlite", "instance")
    shutil.copytree(ROOT / "sample_app", tmp_path / "sample_app", ignore=ignore)
    shutil.copytree(ROOT / "migrations", tmp_path / "migrations", ignore=ignore)
    made = Project(tmp_path)
    yield made
    assert not made.configured_db.exists(), "migcheck created the app's configured database"
    assert not (tmp_path / "instance").exists(), "migcheck created the app's instance folder"
    assert not made.tmp.exists() or not any(made.tmp.iterdir()), "migcheck left its scratch area behind"
