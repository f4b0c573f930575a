"""One run: load the app → scratch databases → checks → findings."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import NamedTuple

from migcheck import cache, reads, scope
from migcheck.checks import data, drift, graph, imports, roundtrip, safety, upgrade
from migcheck.databases.scratch import Scratch, scratch_area
from migcheck.findings import Finding, Run
from migcheck.progress import Progress, silent
from migcheck.project import Options, Project, open_project, revisions, start
from migcheck.project.appload import Factory, load_migrate_app
from migcheck.project.redirect import redirected_configs
from migcheck.usercode import relative


def run(app_path: str | None, directory: str | None, checks: tuple[str, ...],
        options: Options, progress: Progress = silent, factory: Factory | None = None,
        loaded: Callable[[], None] = lambda: None) -> Run:
    """`factory`: the app factory a Flask CLI group knows (`FlaskGroup(create_app=...)`), used when
    `app_path` is None; `loaded`: called once the app, its libraries and the revision files are."""
    started = time.perf_counter()
    with scratch_area(options.db_url, options.origin("db_url")) as scratch, \
            redirected_configs(scratch.redirect_url), warnings.catch_warnings():
        # Alembic warns about duplicate revision ids; the graph check reports them properly.
        warnings.filterwarnings("ignore", message=r"Revision \w+ is present more than once")
        progress("loading the app", 0, 0)
        app, found = load_migrate_app(app_path, factory)
        # An app that upgrades at startup ran env.py's fileConfig: the report says what matters.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        with app.app_context():
            project = open_project(app, scratch, directory, options)
            loaded()
            started_from = _fresh_start(scratch)
            begins = _begin(project)
            checked = run_checks(project, checks, progress)
    return Run(app.import_name, len(project.scripts), checked.ran, started_from + checked.findings,
               time.perf_counter() - started, relative(os.fspath(project.directory)),
               cached=checked.cached, found=found + project.found, notes=begins + checked.notes,
               not_run=checked.not_run, mismatches=checked.mismatches)


def _fresh_start(scratch: Scratch) -> list[Finding]:
    """Start from empty scratch databases, even if the app created tables while it loaded."""
    return [
        Finding("upgrade", "app-created-tables", "info",
                f"the app created tables in the {'default database' if bind is None else repr(bind)}"
                " while it loaded (e.g. db.create_all() in the factory); they went to migcheck's "
                "scratch database, which was emptied before the checks")
        for bind in scratch.reset()
    ]


def _begin(project: Project) -> tuple[str, ...]:
    """The starting schema on the empty scratch database, if the project has one; the summary line
    that says where the walk starts."""
    if project.start is None:
        return ()
    return (start.describe(project.start, start.lay_down(project)),)


class Checked(NamedTuple):
    findings: list[Finding]
    cached: int = 0  # revisions resumed from the cache instead of walked
    notes: tuple[str, ...] = ()
    ran: tuple[str, ...] = ()  # the selected checks that ran, in order
    not_run: tuple[tuple[str, str], ...] = ()  # the selected checks that did not, and why
    mismatches: tuple[str, ...] = ()  # see Run.mismatches


_WALKED = ("upgrade", "drift", "roundtrip", "safety", "data")  # what needs the upgrade to head


def run_checks(project: Project, checks: tuple[str, ...], progress: Progress = silent) -> Checked:
    progress("graph", 0, 0)
    findings = graph.check(project)
    if "graph" not in checks:  # still needed: nothing else can run on an unreadable history
        findings = [f for f in findings if f.severity == "fatal"]
    if any(f.severity == "fatal" for f in findings):
        return _checked(findings, checks, {c: "the revision history cannot be read"
                                           for c in checks if c != "graph"})
    cached = 0
    notes: tuple[str, ...] = ()
    mismatches: tuple[str, ...] = ()
    not_run: dict[str, str] = {}
    walking = [c for c in checks if c in _WALKED]
    if walking:
        with_rows, watch, notes = _undeployed(project, checks)
        walked, cached = _walk(project, "roundtrip" in checks, with_rows, watch, progress)
        if watch is not None and watch.observer is not None:
            mismatches = tuple(mismatch.line() for mismatch in watch.observer.mismatches)
        walked = data.supersede(walked)
        failed = _upgrade_failed(walked)
        if failed is not None:
            after = f" at `{failed.details['revision']}`" if failed.details.get("revision") else ""
            stopped = [c for c in walking if c not in ("upgrade", "drift")]
            not_run.update((c, f"stopped where the upgrade failed{after}") for c in stopped)
            if "drift" in checks:
                not_run["drift"] = "the upgrade to head failed"
            if _said_by_the_round_trip(failed, walked):
                walked = [f for f in walked if f is not failed]
            elif failed.severity == "fatal":  # said once; nothing after it could be checked
                walked = [f for f in walked if f.check != "upgrade" or f is failed]
            elif "upgrade" not in checks:  # not asked for: the checks that needed it could not run
                walked = [_needed(failed, [c for c in walking if c != "upgrade"]) if f is failed else f
                          for f in walked]
            elif "drift" in checks:
                walked.append(Finding("drift", "drift-skipped", "info",
                                      "drift not checked: the upgrade to head failed"))
        elif "drift" in checks:  # drift compares against the upgraded schema
            progress("drift", 0, 0)
            walked += drift.check(project, _reflections(project))
        if "safety" in checks and watch is not None and not watch.scope:
            not_run["safety"] = "no revision in scope"
        if "data" in checks and not with_rows:
            not_run["data"] = "no revision in scope"
        findings += walked
    if "imports" in checks:  # last: it imports modules, which adds their tables to the metadata
        progress("imports", 0, 0)
        unimported = imports.check(project)
        findings = imports.supersede(findings, unimported) + unimported
    return _checked(findings, checks, not_run, cached, notes)._replace(mismatches=mismatches)


def _reflections(project: Project) -> Path | None:
    """Where the drift check keeps the schemas it reflected, for the next run; None with --no-cache."""
    root = cache.cache_root() if project.options.cache else None
    return root / "reflected" if root is not None else None


def _upgrade_failed(walked: list[Finding]) -> Finding | None:
    """The walk's failed upgrade, if any (an error a revision caught is an info, and the walk went on)."""
    return next((f for f in walked if f.check == "upgrade" and f.severity in ("error", "fatal")), None)


def _checked(findings: list[Finding], checks: tuple[str, ...], not_run: dict[str, str], cached: int = 0,
             notes: tuple[str, ...] = ()) -> Checked:
    return Checked(findings, cached, notes, tuple(c for c in checks if c not in not_run),
                   tuple((c, not_run[c]) for c in checks if c in not_run))


def _said_by_the_round_trip(failed: Finding, walked: list[Finding]) -> bool:
    """A revision whose re-upgrade failed, failing the same way when the rebuild upgrades it again
    (its module remembers it ran): one cause, which the round trip's finding says."""
    return any(f.rule == "roundtrip-reupgrade-failed" and f.details.get("revision") is not None
               and f.details.get("revision") == failed.details.get("revision")
               and f.message.endswith(str(failed.details.get("error"))) for f in walked)


def _needed(failed: Finding, needing: list[str]) -> Finding:
    """The upgrade's failure, when the upgrade check was not selected: the checks that need it could
    not run (once, as migcheck could not check)."""
    return failed._replace(
        rule="upgrade-needed", severity="fatal",
        message=f"{', '.join(needing)} could not run: {'they need' if len(needing) > 1 else 'it needs'} "
                f"the upgrade to head, and {failed.message}")


def _undeployed(project: Project, checks: tuple[str, ...]
                ) -> tuple[frozenset[str], safety.Watch | None, tuple[str, ...]]:
    """What the safety and data checks look at, the revisions not deployed yet: the data check's
    revisions, the safety check's watch, and one summary line for both."""
    if not {"safety", "data"} & set(checks):
        return frozenset(), None, ()
    in_scope = scope.find(project)
    note = f"{', '.join(c for c in ('safety', 'data') if c in checks)}: {in_scope.describe()}"
    watch = None
    if "safety" in checks:
        targets = safety.targets(project)
        watch = safety.Watch(project, in_scope.revisions, targets)
        note += f"; {safety.describe(targets)}"
    return (in_scope.revisions if "data" in checks else frozenset()), watch, (note,)


def _walk(project: Project, round_trip: bool, with_rows: frozenset[str], watch: safety.Watch | None,
          progress: Progress) -> tuple[list[Finding], int]:
    """Upgrade to head, round-tripping every revision if asked (and the revisions `with_rows` with
    rows in the tables, for the data check), with the safety check watching if asked; resumes from
    the cache.

    Returns the findings and how many revisions the cache spared.
    """
    kept = cache.open_cache(project) if project.options.cache and cache.usable(project) else None
    safety_key = cache.Safety(watch.scope, repr(sorted(watch.targets.items(), key=repr))) \
        if watch else None
    restored = cache.restore(kept, project, round_trip, with_rows, safety_key) if kept else None
    already = restored.revisions if restored else frozenset()
    walking = len(already) < len(project.scripts)  # else nothing is saved: what it reads is not needed
    if walking:
        revisions.load_all(project.scripts)
    caught = upgrade.Caught(project)
    observers: list[upgrade.Observer] = [caught, *([watch] if watch else [])]
    if watch and restored:  # what cached in-scope revisions created is still new
        watch.created.update(restored.created)
    excluded = [os.fspath(project.scratch.root)] + ([os.fspath(kept.directory.parent)] if kept else [])
    recording: AbstractContextManager[set[str]] = \
        reads.recording(excluded) if walking else nullcontext(set())
    with upgrade.catching(caught), safety.watching(watch) if watch else nullcontext(), recording as read:
        if round_trip or with_rows:
            # The round trip walks from base to head too, so it stands in for the plain upgrade. For
            # the data check alone, only its revisions are round-tripped.
            skip = already if round_trip else already | (
                frozenset(s.revision for s in project.scripts) - with_rows)
            walked = roundtrip.check(project, skip, with_rows,
                                     cached_rows=bool(restored and restored.rows),
                                     observers=observers, progress=progress, at_heads=not walking)
            if not round_trip:  # the data check alone: of its round trips' findings, only the rows'
                walked = [f for f in walked if f.check != "roundtrip" or f.rule in data.ROW_RULES]
        else:
            walked = upgrade.check(project, observers, progress)
    walked = (restored.findings if restored else []) + caught.findings + walked + (
        watch.findings if watch else [])
    if kept and walking and not _upgrade_failed(walked):
        checked = (restored.data if restored else frozenset()) | with_rows
        cache.save(kept, project, walked, round_trip, checked,
                   rows=bool(with_rows) or bool(restored and restored.rows), safety=safety_key,
                   created=watch.created if watch else (),
                   reads=read | set(restored.reads if restored else ()))
    return walked + (cache.not_kept(kept) if kept else []), len(already)
