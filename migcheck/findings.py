"""Findings: the plain data every check returns and every report format reads."""

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


def exit_code(findings: list[Finding]) -> int:
    """0 clean, 1 errors found, 2 when migcheck could not complete its checks."""
    severities = {f.severity for f in findings}
    if "fatal" in severities:
        return 2
    if "error" in severities:
        return 1
    return 0
