"""JUnit XML for CI test dashboards: one testcase per check, failing when the check found errors."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from migcheck.findings import Finding, Run

_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # characters XML 1.0 cannot hold


def render(run: Run) -> str:
    checks = sorted({*run.selected, *(f.check for f in run.findings)},
                    key=lambda name: (run.rank(name), name))
    not_run = dict(run.not_run)
    suite = ET.Element("testsuite", name="migcheck", time=f"{run.seconds:.3f}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for check in checks:
        findings = [f for f in run.findings if f.check == check]
        case = ET.SubElement(suite, "testcase", classname=f"migcheck.{run.app}", name=check)
        counts["tests"] += 1
        fatal = [f for f in findings if f.severity == "fatal"]
        errors = [f for f in findings if f.severity == "error"]
        if fatal or errors:
            kind = "error" if fatal else "failure"  # error: migcheck could not check
            bad = fatal or errors
            counts["errors" if fatal else "failures"] += 1
            element = ET.SubElement(case, kind, message=_clean(_headline(bad)), type=bad[0].rule)
            element.text = _clean("\n".join(_describe(f) for f in bad))
        elif any(f.rule.endswith("-skipped") for f in findings) or check in not_run:
            counts["skipped"] += 1
            reason = next((f.message for f in findings if f.rule.endswith("-skipped")),
                          f"not run: {not_run.get(check)}")
            ET.SubElement(case, "skipped", message=_clean(reason))
        others = [f for f in findings if f.severity in ("warning", "info")
                  and not f.rule.endswith("-skipped")]
        if others:
            ET.SubElement(case, "system-out").text = _clean("\n".join(_describe(f) for f in others))
    for name, value in counts.items():
        suite.set(name, str(value))
    root = ET.Element("testsuites", {"name": "migcheck", "time": f"{run.seconds:.3f}",
                                     **{name: str(value) for name, value in counts.items()}})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _headline(findings: list[Finding]) -> str:
    if len(findings) == 1:
        return findings[0].message
    return f"{len(findings)} problems, first: {findings[0].message}"


def _describe(finding: Finding) -> str:
    where = f"{finding.location}: " if finding.location else ""
    label = f"{finding.severity}: " if finding.severity in ("warning", "info") else ""
    text = f"{where}{label}{finding.message} [{finding.rule}]"
    return text + (f"\n    fix: {finding.hint}" if finding.hint else "")


def _clean(text: str) -> str:
    return _NOT_XML.sub("?", text)
