"""The revision graph: one head, no cycles, no missing or duplicate revisions."""

from __future__ import annotations

import re
from collections import Counter

from alembic.script import Script

from migcheck.findings import Finding
from migcheck.project import Project
from migcheck.pyfile import read_source_leniently
from migcheck.usercode import relative

NAME = "graph"


def check(project: Project) -> list[Finding]:
    scripts = project.scripts
    findings = _duplicates(scripts) + _missing(scripts)
    if not findings:
        findings = _cycles(scripts)
    if not findings:
        findings = _heads(scripts)
    return findings


def _duplicates(scripts: list[Script]) -> list[Finding]:
    counts = Counter(s.revision for s in scripts)
    findings = []
    for script in scripts:
        if counts[script.revision] > 1:
            others = ", ".join(relative(s.path) for s in scripts
                               if s.revision == script.revision and s is not script)
            findings.append(_finding(
                "graph-duplicate-revision", "error", script, "revision",
                f"revision id `{script.revision}` is also used by {others}; alembic silently "
                "keeps only one of the files",
                "give one of them a new id (e.g. `python -c \"import uuid; "
                "print(uuid.uuid4().hex[:12])\"`) and point its children at it",
            ))
    return findings


def _missing(scripts: list[Script]) -> list[Finding]:
    known = {s.revision for s in scripts}
    findings = []
    for script in scripts:
        for parent in parents(script):
            if parent not in known:
                findings.append(_finding(
                    "graph-missing-revision", "fatal", script, "down_revision",
                    f"down_revision `{parent}` of `{script.revision}` does not exist",
                    "restore the missing revision file, or point down_revision at an existing "
                    "revision (`flask db heads` / `flask db history` show them)",
                ))
    return findings


def _cycles(scripts: list[Script]) -> list[Finding]:
    by_id = {s.revision: s for s in scripts}
    # Peel off revisions whose parents are all peeled (from the bases up); what remains
    # lies on a cycle or descends from one.
    waiting = {rev: set(parents(s)) for rev, s in by_id.items()}
    ready = [rev for rev, pending in waiting.items() if not pending]
    children: dict[str, list[str]] = {}
    for rev, pending in waiting.items():
        for parent in pending:
            children.setdefault(parent, []).append(rev)
    while ready:
        rev = ready.pop()
        del waiting[rev]
        for child in children.get(rev, ()):
            waiting[child].discard(rev)
            if not waiting[child]:
                ready.append(child)
    findings: list[Finding] = []
    reported: set[str] = set()
    for start in waiting:
        path = [start]
        while path[-1] not in path[:-1]:  # follow parents inside the remainder to a repeat
            path.append(next(p for p in parents(by_id[path[-1]]) if p in waiting))
        cycle = path[path.index(path[-1]):]
        if reported.isdisjoint(cycle):
            reported.update(cycle)
            members = " -> ".join(f"`{r}` ({relative(by_id[r].path)})" for r in cycle)
            findings.append(_finding(
                "graph-cycle", "fatal", by_id[cycle[0]], "down_revision",
                f"the revisions form a cycle: {members}",
                "a revision's down_revision must point at an older revision; fix the "
                "down_revision that closes the loop",
            ))
    return findings


def _heads(scripts: list[Script]) -> list[Finding]:
    referenced = {p for s in scripts for p in parents(s)}
    heads = [s for s in scripts if s.revision not in referenced]
    # Heads with branch labels are separate branches on purpose (e.g. one per database).
    unlabelled = [s for s in heads if not s.branch_labels]
    if len(unlabelled) < 2:
        return []
    listing = ", ".join(f"`{s.revision}` ({relative(s.path)})" for s in unlabelled)
    return [
        _finding(
            "graph-multiple-heads", "error", script, "revision",
            f"revision `{script.revision}` is one of {len(unlabelled)} heads: {listing}",
            'merge them: `flask db merge heads -m "merge heads"`, then commit the new revision',
        )
        for script in unlabelled
    ]


def parents(script: Script) -> tuple[str, ...]:
    down = script.down_revision
    if down is None:
        return ()
    return (down,) if isinstance(down, str) else tuple(down)


def _finding(rule: str, severity: str, script: Script, variable: str, message: str,
             hint: str) -> Finding:
    return Finding(NAME, rule, severity, message, relative(script.path),  # type: ignore[arg-type]
                   _assignment_line(script.path, variable), hint,
                   {"revision": script.revision})


def _assignment_line(path: str, variable: str) -> int | None:
    """The line of `variable = ...` in a revision file (what a reviewer needs to look at)."""
    pattern = re.compile(rf"^{variable}\s*(:[^=]*)?=")
    for number, line in enumerate(read_source_leniently(path).splitlines(), 1):
        if pattern.match(line):
            return number
    return None
