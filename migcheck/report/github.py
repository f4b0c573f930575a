"""GitHub Actions: `::error file=…,line=…,title=…::` annotations and the job summary table."""

from __future__ import annotations

from collections import Counter

from migcheck.findings import SEVERITIES, Finding, Run
from migcheck.report import repository_path, repository_root, text

LIMIT = 10  # GitHub shows at most this many error and this many warning annotations per step
SUMMARY_BYTES = 1024 * 1024  # GitHub's cap on one step's summary
_COMMAND = {"fatal": "error", "error": "error", "warning": "warning", "info": "notice"}


def render(run: Run) -> str:
    """One annotation per finding, the most severe first (GitHub shows only the first few)."""
    root = repository_root()
    lines = []
    for finding in _by_severity(run.findings):
        properties = []
        if finding.path is not None:
            properties.append(f"file={_property(repository_path(finding.path, root))}")
            if finding.line:
                properties.append(f"line={finding.line}")
        properties.append(f"title={_property(f'migcheck: {finding.rule}')}")
        message = finding.message + (f"\nfix: {finding.hint}" if finding.hint else "")
        lines.append(f"::{_COMMAND[finding.severity]} {','.join(properties)}::{_data(message)}")
    return "\n".join(lines)


def hidden(run: Run) -> int:
    """How many error and warning annotations GitHub will not show."""
    counts = Counter(_COMMAND[f.severity] for f in run.findings)
    return max(counts["error"] - LIMIT, 0) + max(counts["warning"] - LIMIT, 0)


def summary(run: Run) -> str:
    """A Markdown table of every finding, for $GITHUB_STEP_SUMMARY."""
    counts = Counter(f.severity for f in run.findings)
    problems = counts["fatal"] + counts["error"]
    headline = f"{problems} error{'s' if problems != 1 else ''}" if problems else "no problems"
    about = [f"`{run.app}`", f"{run.revisions} revision{'s' if run.revisions != 1 else ''}",
             f"checks: {', '.join(run.checks) or 'none'}{text.not_run(run)}"]
    about += [f"{counts[s]} {s}" for s in ("warning", "info") if counts[s]]
    if run.suppressed:
        about.append(f"{sum(run.suppressed.values())} suppressed")
    lines = [f"### migcheck: {headline}", "", " · ".join(about), ""]
    lines += [*(f"> {_cell(note)}" for note in run.notes), ""] if run.notes else []
    if hidden(run):
        lines += [f"> GitHub shows at most {LIMIT} error and {LIMIT} warning annotations per step: "
                  f"{hidden(run)} more are only in this table and in the log.", ""]
    if run.findings:
        lines += ["| Severity | Location | Rule | Finding | Fix |", "| --- | --- | --- | --- | --- |"]
    size = len("\n".join(lines).encode())
    root = repository_root()
    findings = _by_severity(run.findings)
    for shown, finding in enumerate(findings):
        where = f"`{repository_path(finding.path, root)}{f':{finding.line}' if finding.line else ''}`" \
            if finding.path else ""
        row = (f"| {finding.severity} | {where} | `{finding.rule}` | {_cell(finding.message)} | "
               f"{_cell(finding.hint or '')} |")
        size += len(row.encode()) + 1
        if size > SUMMARY_BYTES - 1000:
            lines.append(f"\n{len(findings) - shown} more findings are only in the log.")
            break
        lines.append(row)
    return "\n".join(lines) + "\n"


def _by_severity(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _cell(text: str) -> str:
    # `|` would end the cell, also inside `code`; a newline would end the row.
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")
