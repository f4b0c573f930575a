"""The JSON report: one versioned document for scripts and dashboards (shape in the README)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from migcheck import __version__
from migcheck.findings import SEVERITIES, Finding, Run, exit_code
from migcheck.suppress import object_of

VERSION = 1  # bumped only when a field changes meaning or goes away; new fields may appear


def render(run: Run) -> str:
    counts = Counter(f.severity for f in run.findings)
    document = {
        "version": VERSION,
        "migcheck": __version__,
        "app": run.app,
        "directory": run.directory,
        "found": list(run.found),
        "revisions": run.revisions,
        "cached": run.cached,
        "checks": list(run.checks),
        "not_run": dict(run.not_run),
        "seconds": round(run.seconds, 3),
        "exit_code": exit_code(run.findings),
        "counts": {severity: counts[severity] for severity in SEVERITIES},
        "suppressed": dict(run.suppressed),
        "notes": list(run.notes),
        "mismatches": list(run.mismatches),
        "findings": [_finding(f) for f in run.findings],
    }
    return json.dumps(document, indent=2, default=str)


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "check": finding.check,
        "rule": finding.rule,
        "severity": finding.severity,
        "message": finding.message,
        "path": finding.path,
        "line": finding.line,
        "object": object_of(finding),
        "hint": finding.hint,
        "details": finding.details,
    }
