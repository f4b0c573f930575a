"""The GitHub Action's key for actions/cache, which keeps migcheck's cache directory between runs.

Run by action.yml with the job's Python (after migcheck is installed in it) from the workspace;
prints the step outputs as $GITHUB_OUTPUT takes them: `dir`, `key` and `restore-keys`.

The exact key covers what a cached entry depends on: every file of the migrations directory, the
Python version and the dependency files (lockfiles, requirements, pyproject.toml). The restore keys
fall back to the newest entry of the project with the same dependencies, then with any. A fallback
can only save time, never change a result: migcheck picks, out of what was restored, the entry that
covers the longest unchanged stretch of the history and checks it by hash (migcheck/cache.py).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

PREFIX = "migcheck-v1"  # bump when the layout of the cache directory changes
DEPENDENCY_FILES = ("*.lock", "requirements*.txt", "requirements/*.txt", "pyproject.toml", "setup.cfg",
                    "setup.py")
NOT_THE_PROJECT = {"node_modules", "site-packages", "venv", "__pycache__"}  # and hidden directories


def migrations_directories(workspace: Path, directory: str) -> list[Path]:
    """The `directory` input, else [tool.migcheck]'s, else every folder with env.py and versions/."""
    if directory:
        return [workspace / directory]
    try:
        from migcheck import config

        configured = config.load(workspace).values.get("directory")
    except Exception:  # an unreadable config: the migcheck step itself will say what is wrong
        configured = None
    if configured:
        return [Path(configured)]
    found = []
    for root, folders, files in os.walk(workspace):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in NOT_THE_PROJECT)
        if "env.py" in files and "versions" in folders:
            found.append(Path(root))
    return found


def digest(files: Iterable[Path], base: Path) -> str:
    """A hash of the files' paths (relative to `base`) and contents; the same on every machine."""
    sha = hashlib.sha256()
    for path in sorted(files):
        name = Path(os.path.relpath(path, base)).as_posix()
        sha.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


def keys(workspace: Path, directory: str) -> tuple[str, list[str]]:
    python = "py{}.{}".format(*sys.version_info[:2])
    dependencies = digest({p for pattern in DEPENDENCY_FILES for p in workspace.glob(pattern) if p.is_file()},
                          workspace)[:16]
    migrations = digest({p for folder in migrations_directories(workspace, directory)
                         for p in folder.rglob("*")
                         if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"},
                        workspace)[:16]
    stem = f"{PREFIX}-{platform.system()}-{python}-"
    return f"{stem}{dependencies}-{migrations}", [f"{stem}{dependencies}-", stem]


def main() -> None:
    workspace = Path.cwd()
    key, restore_keys = keys(workspace, os.environ.get("INPUT_DIRECTORY", ""))
    cache_dir = Path(os.environ.get("RUNNER_TEMP") or workspace / ".migcheck-action") / "migcheck-cache"
    print(f"migcheck cache: {key} (else the newest of {', '.join(restore_keys)}*)", file=sys.stderr)
    print(f"dir={cache_dir}")
    print(f"key={key}")
    print("restore-keys<<MIGCHECK_EOF", *restore_keys, "MIGCHECK_EOF", sep="\n")


if __name__ == "__main__":
    main()
