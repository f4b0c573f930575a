"""Which revisions are not deployed yet: the ones the deploy-safety and data checks look at.

A 200-revision history must not flood the report with what production ran long ago, so these checks
look only at new revisions, as every mature migration linter does. In order:
- `--since REVISION`: the revisions after it (`--since base`: all of them);
- in a git work tree, the revision files that are new relative to the base branch: `--git-base REF`,
  else the pull request's base branch in GitHub Actions, else the branch's upstream, else
  `origin/HEAD`, else `main` / `master` (uncommitted and untracked files count as new);
- otherwise the head revision(s).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from typing import NamedTuple

from alembic.script import Script

from migcheck.checks.graph import parents
from migcheck.errors import UsageError
from migcheck.project import Project


class Scope(NamedTuple):
    revisions: frozenset[str]
    reason: str  # how they were chosen, for the summary: "new since origin/main", ...

    def describe(self) -> str:
        count = len(self.revisions)
        return f"{count} revision{'' if count == 1 else 's'} in scope ({self.reason})"


def find(project: Project) -> Scope:
    options = project.options
    if options.since:
        return _since(project.scripts, project, options.since)
    top = _git(project.directory, "rev-parse", "--show-toplevel")
    if top is None:
        return _heads(project.scripts, "the head revision: not in a git repository")
    base = _base_ref(top, options.git_base)
    if base is None:
        return _heads(project.scripts, "the head revision: no base branch found; name one with "
                                       "--git-base or --since")
    merge_base = _git(top, "merge-base", "HEAD", base)
    if merge_base is None:
        return _heads(project.scripts, f"the head revision: HEAD and {base} share no history")
    listed = _git(top, "ls-tree", "-r", "-z", "--name-only", merge_base, "--",
                  *_relative_dirs(project.scripts, top))
    deployed = {path for path in (listed or "").split("\0") if path}
    new = frozenset(s.revision for s in project.scripts
                    if os.path.relpath(os.path.realpath(s.path), top).replace(os.sep, "/") not in deployed)
    return Scope(new, f"new since {base}")


def _since(scripts: list[Script], project: Project, since: str) -> Scope:
    if since == "base":
        return Scope(frozenset(s.revision for s in scripts), "--since base: every revision")
    try:
        start = project.script.get_revision(since)
    except Exception as exc:  # alembic's errors for unknown, ambiguous or malformed ids
        raise UsageError(f"--since {since!r}: {exc}. Give a revision id from `flask db history` "
                         "(a unique prefix is enough), or `base` for every revision.") from None
    assert start is not None
    children: dict[str, list[str]] = {}
    for script in scripts:
        for parent in parents(script):
            children.setdefault(parent, []).append(script.revision)
    after: set[str] = set()
    queue = list(children.get(start.revision, ()))
    while queue:
        revision = queue.pop()
        if revision not in after:
            after.add(revision)
            queue += children.get(revision, ())
    return Scope(frozenset(after), f"after {start.revision} (--since)")


def _heads(scripts: list[Script], reason: str) -> Scope:
    referenced = {p for s in scripts for p in parents(s)}
    return Scope(frozenset(s.revision for s in scripts if s.revision not in referenced), reason)


def _base_ref(top: str, given: str | None) -> str | None:
    if given:
        if _git(top, "rev-parse", "--verify", "--quiet", f"{given}^{{commit}}") is None:
            raise UsageError(f"--git-base {given!r} is not a commit or branch in {top} (in CI, fetch "
                             "it first, e.g. `git fetch origin main`).")
        return given
    candidates = []
    if os.environ.get("GITHUB_BASE_REF"):  # a pull request in GitHub Actions
        candidates.append(f"origin/{os.environ['GITHUB_BASE_REF']}")
    upstream = _git(top, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}")
    branch = _git(top, "rev-parse", "--abbrev-ref", "HEAD")
    # A pushed branch's upstream is usually its own copy on the remote (origin/feature), which
    # already holds the new revisions: only an upstream of another name is a base branch.
    if upstream and upstream.split("/", 1)[-1] != branch:
        candidates.append(upstream)
    candidates += ["origin/HEAD", "main", "master", "origin/main", "origin/master"]
    for candidate in candidates:
        if _git(top, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}") is not None:
            return candidate
    return None


def _relative_dirs(scripts: Iterable[Script], top: str) -> list[str]:
    return sorted({os.path.relpath(os.path.dirname(os.path.realpath(s.path)), top) for s in scripts})


def _git(directory: str | os.PathLike[str], *args: str) -> str | None:
    """git's output without its last newline, or None when it fails (not a repository, unknown
    ref, no git installed)."""
    try:
        done = subprocess.run(["git", "-C", os.fspath(directory), *args], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.removesuffix("\n") if done.returncode == 0 else None
