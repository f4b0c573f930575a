"""One finding per root cause: the findings of one rule about several objects of one revision become one.

A downgrade that is `pass` leaves every column its upgrade added behind; a revision that drops five
columns breaks the running app five times over. The checks report each object (so ignores, inline
comments and baselines work per object, see suppress.py); after suppression, the objects left of one
revision and rule are reported as one finding, which names the first few and how many there are
and keeps every one in `details["objects"]` (the JSON report shows them all, SARIF as related
locations). The exit code and the counts follow these grouped findings.
"""

from __future__ import annotations

from typing import Any

from migcheck.findings import Finding, Run
from migcheck.suppress import object_of

SHOWN = 3  # objects a grouped message names besides the first


def group(run: Run) -> Run:
    return run._replace(findings=group_findings(run.findings))


def group_findings(findings: list[Finding]) -> list[Finding]:
    """Each group where its first member was, the findings without a revision as they were."""
    groups: dict[tuple[Any, ...], list[Finding]] = {}
    for finding in findings:
        revision = finding.details.get("revision")
        key = (finding.check, finding.rule, finding.severity, finding.path, revision) \
            if revision is not None else (id(finding),)
        groups.setdefault(key, []).append(finding)
    return [members[0] if len(members) == 1 else _grouped(members) for members in groups.values()]


def members(finding: Finding) -> list[dict[str, Any]]:
    """The objects a grouped finding stands for (each: object, line, message and its details);
    empty for a finding about one object."""
    return list(finding.details.get("objects", ()))


def _grouped(findings: list[Finding]) -> Finding:
    first = findings[0]
    revision = first.details["revision"]
    objects = [{"object": object_of(f), "line": f.line, "message": f.message,
                **{k: v for k, v in f.details.items() if k != "revision"}} for f in findings]
    rest = [_name(item, revision, first.line) for item in objects[1:]]
    listed = ", ".join(rest[:SHOWN]) + (f" and {len(rest) - SHOWN} more" if len(rest) > SHOWN else "")
    shared = {k: v for k, v in first.details.items()
              if k in ("revision", "bind") and all(f.details.get(k) == v for f in findings)}
    return first._replace(
        message=f"{first.message}; the same for {len(rest)} more: {listed}",
        details={**shared, "count": len(findings), "objects": objects})


def _name(item: dict[str, Any], revision: str, line: int | None) -> str:
    """How the message names one more object: `table.column`, with its line where that differs."""
    named = f"`{item['object']}`" if item["object"] not in (None, revision) else None
    at = f"line {item['line']}" if item["line"] and item["line"] != line else None
    if named and at:
        return f"{named} ({at})"
    return named or at or "another"
