"""Suppression: leave out the findings a project has accepted, between the checks and the reports.

Three ways, applied in this order (a finding counts once, under the first that matches):
- `ignore`: `RULE` or `RULE:OBJECT` patterns from `[tool.migcheck] ignore` or `--ignore`;
- `inline`: a `# migcheck: ignore[RULE, ...]` comment on the line a finding points at or on a
  comment line of its own just above it, or on a line of its own before the file's first statement
  (after its docstring) for the whole file; text after the comment is the reason
  (`# migcheck: ignore[safety-drop-column] -- unused since v2`), shown with --verbose; a
  `# migcheck: irreversible` at the end of a statement that deletes rows accepts that deletion;
- `baseline`: findings recorded by `--write-baseline`, matched on rule, path and object (not on
  line numbers, which move with every edit).
Fatal findings (the history cannot be read) are never left out: nothing else was checked.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from migcheck import rules
from migcheck.errors import UsageError
from migcheck.findings import Finding
from migcheck.pyfile import DELETES, read_source_leniently

if TYPE_CHECKING:
    from migcheck.findings import Run

BASELINE_VERSION = 1
_INLINE = re.compile(r"#\s*migcheck:\s*ignore\[([^\]]*)\][\s:—-]*([^#]*)")
IRREVERSIBLE = re.compile(r"#\s*migcheck:\s*irreversible\b")
_DELETION = "roundtrip-upgrade-deletes-rows"


def irreversible_statement(line: str) -> bool:
    """`op.execute("DELETE FROM setting")  # migcheck: irreversible`: the marker at the end of a
    statement that deletes rows accepts that deletion only (elsewhere it marks the whole revision)."""
    marker = IRREVERSIBLE.search(line)
    return marker is not None and bool(DELETES.search(line[:marker.start()]))

Key = tuple[str, str | None, str | None]  # rule, path (relative to the baseline), object


class Ignore(NamedTuple):
    rule: str  # a rule id or a glob of them (`drift-*`)
    object: str | None  # a table, `table.column` or revision id (a glob too); None: any


def parse_ignore(text: str) -> Ignore:
    """`RULE` or `RULE:OBJECT`; ValueError says what is wrong with it."""
    rule, _, obj = text.strip().partition(":")
    rule, obj = rule.strip(), obj.strip()
    if not rule:
        raise ValueError(f"{text!r} has no rule id (write RULE or RULE:OBJECT)")
    if not rules.matching(rule):
        raise ValueError(f"{text!r}: no rule id matches {rule!r} (the README lists them)")
    return Ignore(rule, obj or None)


def object_of(finding: Finding) -> str | None:
    """What a finding is about: `table`, `table.column` or `table.name` (an index or constraint),
    else the revision id (also for a finding grouped over several objects: grouping.py)."""
    details = finding.details
    if details.get("table"):
        name = details.get("column") or details.get("name")
        return f"{details['table']}.{name}" if name else details["table"]
    return details.get("revision")


def apply(run: Run, ignores: Iterable[Ignore] = (), baseline: Counter[Key] | None = None,
          baseline_dir: Path | None = None) -> Run:
    """The run without the suppressed findings, with their counts per reason."""
    ignores = list(ignores)
    remaining = Counter(baseline or {})
    kept: list[Finding] = []
    suppressed: Counter[str] = Counter(run.suppressed)
    waived = list(run.waived)
    for finding in run.findings:
        reason = None
        why = ""
        if finding.severity == "fatal":
            pass
        elif any(_matches(ignore, finding) for ignore in ignores):
            reason = "ignore"
        elif (inline := _ignored_inline(finding)) is not None:
            reason, why = "inline", inline
        elif baseline_dir is not None and remaining[key(finding, baseline_dir)] > 0:
            remaining[key(finding, baseline_dir)] -= 1  # two equal findings need two entries
            reason = "baseline"
        if reason is None:
            kept.append(finding)
        else:
            suppressed[reason] += 1
            waived.append((finding, reason, why))
    return run._replace(findings=kept, suppressed=dict(suppressed), waived=tuple(waived))


def _matches(ignore: Ignore, finding: Finding) -> bool:
    if not fnmatchcase(finding.rule, ignore.rule):
        return False
    if ignore.object is None:
        return True
    obj = object_of(finding)
    # `legacy_audit` also covers its columns, `legacy_audit.note`.
    return obj is not None and (fnmatchcase(obj, ignore.object)
                                or fnmatchcase(obj, ignore.object + ".*"))


def _ignored_inline(finding: Finding) -> str | None:
    """The reason given with the inline comment that ignores the finding ("" if none), or None."""
    if finding.path is None:
        return None
    whole_file, by_line = _inline_comments(os.path.abspath(finding.path))
    for pattern, reason in whole_file + by_line.get(finding.line or 0, []):
        if fnmatchcase(finding.rule, pattern):
            return reason
    return None


@cache
def _inline_comments(path: str) -> tuple[list[tuple[str, str]], dict[int, list[tuple[str, str]]]]:
    """The (rule pattern, reason) pairs a file ignores as a whole, and per line. A comment on a
    line of its own also covers the line below it."""
    try:
        text = read_source_leniently(path)
    except (OSError, SyntaxError, ValueError):
        return [], {}
    first_statement = _first_statement_line(text)
    whole_file: list[tuple[str, str]] = []
    by_line: dict[int, list[tuple[str, str]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        own_line = line.lstrip().startswith("#")
        if irreversible_statement(line):
            by_line.setdefault(number, []).append((_DELETION, "marked irreversible"))
        for match in _INLINE.finditer(line):
            reason = match.group(2).strip()
            patterns = [(p.strip(), reason) for p in match.group(1).split(",") if p.strip()]
            by_line.setdefault(number, []).extend(patterns)
            if own_line:
                by_line.setdefault(number + 1, []).extend(patterns)
            if number < first_statement and own_line:
                whole_file.extend(patterns)
    return whole_file, by_line


def _first_statement_line(text: str) -> int:
    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError):
        return 0  # no whole-file comments in a file that does not parse
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the module docstring
    return body[0].lineno if body else len(text.splitlines()) + 1


def key(finding: Finding, baseline_dir: Path) -> Key:
    path = None
    if finding.path is not None:
        path = Path(os.path.relpath(os.path.abspath(finding.path), baseline_dir)).as_posix()
    return finding.rule, path, object_of(finding)


def read_baseline(path: Path) -> Counter[Key]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"The baseline file {os.fspath(path)!r} does not exist. Create it with "
                         f"--write-baseline {os.fspath(path)}.") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"Could not read the baseline file {os.fspath(path)!r}: {exc}. Write it "
                         "again with --write-baseline.") from exc
    try:
        if data["version"] != BASELINE_VERSION:
            raise ValueError(f"version {data['version']!r}, expected {BASELINE_VERSION}")
        return Counter((entry["rule"], entry["path"], entry["object"]) for entry in data["findings"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"The baseline file {os.fspath(path)!r} is not a migcheck baseline "
                         f"({type(exc).__name__}: {exc}). Write it again with --write-baseline."
                         ) from exc


def write_baseline(path: Path, findings: list[Finding]) -> Counter[Key]:
    """Record the findings (what later runs with --baseline leave out); returns their keys."""
    base = path.resolve().parent
    entries = sorted(({"rule": f.rule, "path": k[1], "object": k[2], "message": f.message}
                      for f in findings for k in [key(f, base)]),
                     key=lambda e: (e["rule"], e["path"] or "", e["object"] or "", e["message"]))
    document = {"version": BASELINE_VERSION,
                "about": "migcheck baseline: findings accepted when it was written; "
                         "`migcheck --baseline FILE` reports only findings not in it.",
                "findings": entries}
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Could not write the baseline file {os.fspath(path)!r}: {exc}.") from exc
    return Counter(key(f, base) for f in findings)
