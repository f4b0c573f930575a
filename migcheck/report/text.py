"""The human report: `path:line: check: message`, the fix under it, a summary line last."""

from __future__ import annotations

from collections import Counter

from migcheck.findings import SEVERITIES, Finding, Run
from migcheck.grouping import members

_COLORS = {"fatal": "31;1", "error": "31;1", "warning": "33;1", "info": "36", "dim": "2",
           "bold": "1", "ok": "32;1"}


def render(run: Run, color: bool, verbose: bool = False) -> str:
    """`verbose` also lists the suppressed findings, with the reason given for each, and where the
    safety rules' prediction and the --db-url server's observation disagree."""
    def paint(text: str, style: str) -> str:
        return f"\033[{_COLORS[style]}m{text}\033[0m" if color else text

    findings = sorted(run.findings, key=lambda f: (run.rank(f.check), SEVERITIES.index(f.severity)))
    lines: list[str] = []
    previous = None
    for finding in findings:
        if previous is not None and finding.check != previous:
            lines.append("")
        previous = finding.check
        lines.extend(_finding_lines(finding, paint, verbose))
    if verbose and run.waived:
        lines += ([""] if lines else []) + ["suppressed:"]
        for finding, how, why in run.waived:
            where = f"{finding.location}: " if finding.location else ""
            lines.append(paint(f"  {where}{finding.rule} ({how}{': ' + why if why else ''})", "dim"))
    if verbose and run.mismatches:
        lines += ([""] if lines else []) + ["prediction and observation disagree (what the safety rules "
                                            "would have said, and what the server did):"]
        lines += [paint(f"  {mismatch}", "dim") for mismatch in run.mismatches]
    if lines:
        lines.append("")
    lines += [paint(note, "dim") for note in run.notes]
    lines.append(_summary(run, paint))
    return "\n".join(lines)


def _finding_lines(finding: Finding, paint: object, verbose: bool = False) -> list[str]:
    """`verbose`: a finding grouped over several objects lists every one of them."""
    assert callable(paint)
    where = paint(f"{finding.location}: ", "bold") if finding.location else ""
    label = "" if finding.severity in ("error", "fatal") else f"{finding.severity}: "
    lines = [f"{where}{paint(finding.check, finding.severity)}: {label}{finding.message}"]
    if verbose:
        for item in members(finding):
            at = f"line {item['line']}: " if item["line"] and item["line"] != finding.line else ""
            lines.append(paint(f"    - {at}{item['message']}", "dim"))
    for key in ("statement", "code"):
        if finding.details.get(key):
            lines += [paint(f"    {line}", "dim") for line in finding.details[key].splitlines()]
    observed = finding.details.get("observed")
    if isinstance(observed, dict) and observed.get("summary"):
        lines.append(paint(f"    observed: {observed['summary']}", "dim"))
    if finding.hint:
        lines.append(f"    fix: {finding.hint}")
    return lines


def _summary(run: Run, paint: object) -> str:
    assert callable(paint)
    counts = Counter(f.severity for f in run.findings)
    problems = counts["fatal"] + counts["error"]
    cached = f" ({run.cached} from cache)" if run.cached else ""
    what = f"{run.app}, {run.revisions} revision{'s' if run.revisions != 1 else ''}{cached}, " \
           f"checks: {', '.join(run.checks) or 'none'}{not_run(run)}" + "".join(f"; {n}" for n in run.found)
    parts = [f"{problems} error{'s' if problems != 1 else ''}"]
    parts += [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in ("warning",) if counts[s]]
    parts += [f"{counts['info']} info"] if counts["info"] else []
    parts += [f"{sum(run.suppressed.values())} suppressed"] if run.suppressed else []
    verdict = paint(", ".join(parts), "error") if problems else paint("no problems", "ok")
    if not problems and len(parts) > 1:
        verdict += " (" + ", ".join(parts[1:]) + ")"
    if counts["fatal"]:
        verdict += " (could not check everything)"
    return f"migcheck: {verdict} in {run.seconds:.2f}s ({what})"


def not_run(run: Run) -> str:
    """`; not run: drift (the upgrade to head failed)`: the selected checks that did not run, by why."""
    why: dict[str, list[str]] = {}
    for check, reason in run.not_run:
        why.setdefault(reason, []).append(check)
    listed = ", ".join(f"{', '.join(checks)} ({reason})" for reason, checks in why.items())
    return f"; not run: {listed}" if listed else ""
