"""Findings and the Run they belong to: the plain data every check returns and every report reads."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

Severity = Literal["fatal", "error", "warning", "info"]

# "fatal" means migcheck could not go on (the history cannot be read); it exits 2.
SEVERITIES: tuple[Severity, ...] = ("fatal", "error", "warning", "info")


class Finding(NamedTuple):
    check: str
    rule: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    hint: str | None = None
    details: dict[str, Any] = {}

    @property
    def location(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line else self.path


class Run(NamedTuple):
    app: str
    revisions: int
    checks: tuple[str, ...]
    findings: list[Finding]
    seconds: float
    directory: str = ""  # the migrations directory, as the user would type it
    suppressed: dict[str, int] = {}  # findings left out of `findings`, per reason (see suppress.py)
    cached: int = 0  # revisions resumed from the cache instead of upgraded and round-tripped
    found: tuple[str, ...] = ()  # what migcheck found by looking (app, migrations): the summary says it
    # the suppressed findings: (finding, how: "ignore" / "inline" / "baseline", the reason given)
    waived: tuple[tuple[Finding, str, str], ...] = ()
    notes: tuple[str, ...] = ()  # what the run assumed, for the summary (e.g. the safety check's scope)
    not_run: tuple[tuple[str, str], ...] = ()  # selected checks that did not run (`checks` ran), and why
    # operations where the safety rules' prediction and what the server did disagree (--verbose)
    mismatches: tuple[str, ...] = ()

    @property
    def selected(self) -> tuple[str, ...]:
        """The checks asked for, those that ran and those that did not, in the order they run."""
        from migcheck.checks import CHECKS

        asked = {*self.checks, *(check for check, _ in self.not_run)}
        return tuple(check for check in CHECKS if check in asked)

    def rank(self, check: str) -> int:
        """Where a check's findings go in a report: in the order the checks run. A check that was not
        selected reports only when migcheck could not check, before anything else ran: first."""
        return self.selected.index(check) if check in self.selected else -1


def exit_code(findings: list[Finding]) -> int:
    """0 clean, 1 errors found, 2 when migcheck could not complete its checks."""
    severities = {f.severity for f in findings}
    if "fatal" in severities:
        return 2
    if "error" in severities:
        return 1
    return 0
