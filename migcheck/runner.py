"""One run: load the app → scratch databases → checks → findings."""

from __future__ import annotations

import time
import warnings
from typing import NamedTuple

from flask import Flask

from migcheck.appload import load_app
from migcheck.checks import drift, graph, upgrade
from migcheck.findings import Finding
from migcheck.project import Options, Project, open_project
from migcheck.scratch import Scratch, scratch_area


class Run(NamedTuple):
    app: str
    revisions: int
    checks: tuple[str, ...]
    findings: list[Finding]
    seconds: float


def run(app_path: str | None, directory: str | None, checks: tuple[str, ...],
        options: Options) -> Run:
    started = time.perf_counter()
    with scratch_area() as scratch, warnings.catch_warnings():
        # Alembic warns about duplicate revision ids; the graph check reports them properly.
        warnings.filterwarnings("ignore", message=r"Revision \w+ is present more than once")
        app = load_app(app_path)
        with app.app_context():
            project = open_project(app, scratch, directory, options)
            findings = _fresh_start(app, scratch) + run_checks(project, checks)
    return Run(app.import_name, len(project.scripts), checks, findings,
               time.perf_counter() - started)


def _fresh_start(app: Flask, scratch: Scratch) -> list[Finding]:
    """Start from empty scratch databases, even if the app created tables while it loaded."""
    engines = list(app.extensions["sqlalchemy"].engines.values())
    return [
        Finding("upgrade", "app-created-tables", "info",
                f"the app created tables in the {'default database' if bind is None else repr(bind)}"
                " while it loaded (e.g. db.create_all() in the factory); they went to migcheck's "
                "scratch database, which was emptied before the checks")
        for bind in scratch.reset(engines)
    ]


def run_checks(project: Project, checks: tuple[str, ...]) -> list[Finding]:
    findings = graph.check(project)
    if "graph" not in checks:  # still needed: nothing else can run on an unreadable history
        findings = [f for f in findings if f.severity == "fatal"]
    if any(f.severity == "fatal" for f in findings):
        return findings
    if "upgrade" in checks or "drift" in checks:
        failed = upgrade.check(project)  # drift compares against the upgraded schema
        findings += failed
        if "drift" in checks:
            if failed:
                findings.append(Finding("drift", "drift-skipped", "info",
                                        "drift not checked: the upgrade to head failed"))
            else:
                findings += drift.check(project)
    return findings
