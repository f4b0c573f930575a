"""SARIF 2.1.0 for code scanning (e.g. github/codeql-action/upload-sarif).

Code scanning needs a repository-relative location on every result and the same ruleId and path
from run to run; the fingerprint is the baseline key (rule, path, object), so an alert survives
edits that move its line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from migcheck import __version__, rules
from migcheck.findings import Finding, Run, exit_code
from migcheck.grouping import members
from migcheck.report import repository_path, repository_root
from migcheck.suppress import object_of

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"fatal": "error", "error": "error", "warning": "warning", "info": "note"}


def render(run: Run) -> str:
    root = repository_root()
    described = list(rules.RULES.values())
    known = set(rules.RULES)
    for finding in run.findings:  # a rule this version's registry lacks still gets a descriptor
        if finding.rule not in known:
            known.add(finding.rule)
            described.append(rules.lookup(finding.rule, finding.check))
    index = {rule.id: i for i, rule in enumerate(described)}
    # Findings about the history as a whole point at env.py: code scanning needs a file.
    fallback = repository_path(os.path.join(run.directory or ".", "env.py"), root)
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "migcheck", "version": __version__,
                                "semanticVersion": __version__,
                                "rules": [_descriptor(rule) for rule in described]}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}},
            "invocations": [{"executionSuccessful": exit_code(run.findings) != 2}],
            "results": [_result(f, index[f.rule], root, fallback) for f in run.findings],
        }],
    }
    return json.dumps(document, indent=2)


def _descriptor(rule: rules.Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.summary},
        "help": {"text": f"{rule.summary}\nFix: {rule.fix}",
                 "markdown": f"{rule.summary}\n\n**Fix:** {rule.fix}"},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"tags": ["migcheck", rule.check]},
    }


def _result(finding: Finding, rule_index: int, root: Path, fallback: str) -> dict[str, Any]:
    path = repository_path(finding.path, root) if finding.path else fallback
    region = {"region": {"startLine": finding.line}} if finding.path and finding.line else {}
    key = "\0".join((finding.rule, path, object_of(finding) or ""))
    text = finding.message + (f"\nFix: {finding.hint}" if finding.hint else "")
    artifact = ({"uri": Path(path).as_uri()} if os.path.isabs(path)  # outside the repository
                else {"uri": quote(path), "uriBaseId": "%SRCROOT%"})
    result = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": artifact, **region}}],
        "partialFingerprints": {"migcheckKey/v1": hashlib.sha256(key.encode()).hexdigest()},
        "properties": {"check": finding.check, "severity": finding.severity},
    }
    grouped = members(finding)
    if grouped:  # one finding for several objects of a revision: each one where it is
        result["relatedLocations"] = [
            {"id": number, "message": {"text": item["message"]},
             "physicalLocation": {"artifactLocation": artifact,
                                  **({"region": {"startLine": item["line"]}} if item["line"] else {})}}
            for number, item in enumerate(grouped)]
    return result
