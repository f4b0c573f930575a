"""Round trip: each revision's downgrade restores exactly the schema before it, and re-upgrades.

All in one run of env.py over one loaded script directory: for every revision from base to head,
upgrade it, snapshot, downgrade it, compare with the snapshot from before, upgrade it again and
compare with the snapshot from after. This also does the upgrade check's work (it ends at head), so
the runner uses it in place of a plain upgrade.

On SQLite, unless --reupgrade, the downgrade runs in a savepoint taken after the upgrade, and the
walk rolls it back instead of upgrading again: the snapshot there is all of sqlite_master, so a
checked downgrade proves the re-upgrade would start where the upgrade started, at the cost of one
upgrade and one snapshot less per revision. What that cannot see, a module that remembers it ran,
is --reupgrade's; servers' snapshots do not see enum types, views or triggers, so on a server the
walk always re-upgrades. A bad downgrade is rolled back the same way.

With a re-upgrade, when a revision's downgrade leaves something behind, the walk goes back to the
state before the revision (a savepoint, databases/checkpoint.py), upgrades it again and goes on, so
one bad revision does not hide the next. Where there is no way back (MySQL and MariaDB, a revision
that ended the transaction, a downgrade that raised, generated rows in the tables), the scratch
database is rebuilt up to that revision instead.

SQLite runs the walk in one transaction for that (Alembic's `transactional_ddl`), but only once a
history has shown a bad downgrade: a history whose downgrades are right never needs the way back,
and runs exactly as `flask db upgrade` runs it, one transaction per revision. A step that fails in
the one-transaction walk (a PRAGMA foreign_keys or a VACUUM cannot work inside a transaction) is run
again the usual way before anything is reported.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, NamedTuple

from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import Script
from sqlalchemy.engine import Connection

from migcheck import compat
from migcheck.checks import data, upgrade
from migcheck.checks.graph import parents
from migcheck.databases import checkpoint, faults
from migcheck.errors import InternalError
from migcheck.findings import Finding
from migcheck.progress import Progress, silent
from migcheck.project import Project, envrun, source, start
from migcheck.project.envrun import run_env
from migcheck.pyfile import read_source_leniently
from migcheck.state import contents, snapshot
from migcheck.suppress import IRREVERSIBLE, irreversible_statement
from migcheck.usercode import relative

NAME = "roundtrip"


_MESSAGES = {
    "extra": ("roundtrip-downgrade-leaves", "downgrade of `{rev}` leaves {what} behind"),
    "missing": ("roundtrip-downgrade-drops",
                "downgrade of `{rev}` drops {what}, which the revision did not create"),
    "not restored": ("roundtrip-downgrade-not-restored",
                     "upgrade of `{rev}` drops {what}; its downgrade does not restore it"),
    "not renamed back": ("roundtrip-downgrade-not-renamed-back",
                         "upgrade of `{rev}` renames {what} to {detail}; its downgrade does not rename "
                         "it back"),
    "changed": ("roundtrip-downgrade-changes", "downgrade of `{rev}` does not restore {what}: {detail}"),
}

_ROW_MESSAGES = {
    "left": ("roundtrip-downgrade-leaves-rows",
             "downgrade of `{rev}` leaves {count} row{s} behind in `{table}` (it had {had} before the "
             "upgrade)",
             "delete in downgrade() every row that upgrade() inserts, or mark the revision "
             "`# migcheck: irreversible` if it cannot be undone"),
    "lost": ("roundtrip-downgrade-loses-rows",
             "downgrade of `{rev}` loses {count} of the {had} rows of `{table}`",
             "a downgrade must keep the rows that were there before the upgrade: re-create a table "
             "by copying its rows (as op.batch_alter_table does), not by dropping and creating it"),
    "deleted": ("roundtrip-upgrade-deletes-rows",
                "the upgrade of `{rev}` deletes {count} of the {had} rows of `{table}`; its downgrade "
                "cannot bring them back",
                "mark the statement `# migcheck: irreversible` if that is intended (the rows are gone "
                "after a downgrade too), or keep a copy for downgrade() to put back"),
    "changed": ("roundtrip-downgrade-changes-rows",
                "downgrade of `{rev}` does not restore {count} of the {had} rows of `{table}`: their "
                "values differ from before the upgrade",
                "restore in downgrade() the values that upgrade() changes if they matter (a backfill "
                "that the downgrade keeps is usually fine)"),
}


class _Restart(Exception):
    """The database is in an unknown state: rebuild it and walk on."""


class Step(NamedTuple):
    action: str  # "upgrade", "downgrade" or "re-upgrade"
    step: RevisionStep
    bind: str | None
    rolled: bool = False  # a downgrade run inside a savepoint, to be rolled back (see _Back)


class _Back(NamedTuple):
    """The way back to the state after a revision's upgrade, taken before its downgrade."""
    mark: checkpoint.Mark
    transaction: Any  # the SQLAlchemy transaction begun for it, if any (compat.hold_transaction)
    ddl: bool  # the migration context's transactional_ddl before


# What cannot run inside a transaction on SQLite, or ends one: a revision naming any of these
# round-trips with a real re-upgrade.
_OUTSIDE_TRANSACTION = re.compile(r"\b(pragma|vacuum|attach|detach|autocommit_block|commit|begin)\b",
                                  re.IGNORECASE)
_AFTER_UPGRADE = "migcheck_after_upgrade"


def check(project: Project, already: frozenset[str] = frozenset(),
          with_rows: frozenset[str] = frozenset(), cached_rows: bool = False,
          observers: Sequence[upgrade.Observer] = (), progress: Progress = silent,
          at_heads: bool = False) -> list[Finding]:
    """`already`: revisions an earlier run round-tripped (the cache put them in the database);
    `with_rows`: revisions whose steps run with rows in every table (the data check's scope);
    `cached_rows`: the database from the cache holds rows an earlier run generated;
    `observers`: called around each first upgrade of a revision (see upgrade.Observer);
    `at_heads`: the cache put the database at the heads, every revision's walk done: none to run."""
    untested, findings = _irreversible(project)
    if at_heads:
        return findings
    # (bind, revision) pairs whose downgrade failed inside a savepoint: run again with a re-upgrade
    real: set[tuple[str | None, str]] = set()
    # (bind, revision) pairs round-tripped already; after a rebuild they are only upgraded
    done = {(bind, revision) for bind in project.binds for revision in already}
    rows = data.new_state(project, with_rows, cached_rows)
    # Whether the walk marks the state before each revision to go back to (see the docstring).
    marks = [project.scratch.dialect == "postgresql"]
    while True:
        current: list[Step] = []
        one_transaction = marks[0] and project.scratch.dialect == "sqlite"
        try:
            run_env(project, functools.partial(_walk, project, untested=untested, done=done,
                                               current=current, findings=findings, rows=rows,
                                               observers=observers, progress=progress, marks=marks,
                                               real=real),
                    passing=(_Restart,), **({"transactional_ddl": True} if one_transaction else {}))
            return findings
        except _Restart:
            # Found while running a revision again without rows: the round-trip finding says it.
            data.drop_suspects(rows)
            marks[0] = project.scratch.dialect in ("sqlite", "postgresql")
        except (InternalError, faults.CouldNotCheck):
            raise
        except Exception as exc:
            key = (current[0].bind, current[0].step.revision.revision) if current else None
            rolled = bool(current) and current[0].rolled
            if (one_transaction or rolled) and key:  # run it again as flask db would before reporting
                if rolled:
                    real.add(key)
                else:
                    marks[0] = False
                done.discard(key)
                findings[:] = [f for f in findings if f.check != NAME
                               or f.details.get("revision") != key[1]]
            elif key and not upgrade.cut_short(exc, project) \
                    and data.suspect(rows, key, current[0].action, exc, current[0].step, project):
                done.discard(key)  # run it again, without rows, to see whether they are the cause
            elif not current or current[0].action == "upgrade":
                return findings + [upgrade.failure(exc, current[0].step if current else None, project)]
            else:
                findings.append(_step_failure(exc, current[0], project))
        project.scratch.reset()
        start.lay_down(project)
        data.restarted(rows)


def _walk(project: Project, heads: tuple[str, ...], context: MigrationContext, *, untested: set[str],
          done: set[tuple[str | None, str]], current: list[Step], findings: list[Finding],
          rows: data.State, observers: Sequence[upgrade.Observer], progress: Progress,
          marks: list[bool], real: set[tuple[str | None, str]]) -> Iterator[RevisionStep]:
    """The steps for alembic to run; it runs each one before asking for the next."""
    connection = context.connection
    assert connection is not None
    bind = project.scratch.bind_for(connection.engine)
    revision_map = project.script.revision_map

    def run(action: str, step: RevisionStep, rolled: bool = False) -> Iterator[RevisionStep]:
        current[:] = [Step(action, step, bind, rolled)]
        with _own_command(context) if action != "upgrade" else nullcontext():
            yield from upgrade.observed(step, context, observers if action == "upgrade" else ())
        current.clear()
        confirmed = data.passed(rows, (bind, step.revision.revision), action, step.revision)
        if confirmed:
            findings.append(confirmed)

    before = snapshot.take(connection, context.version_table)
    steps = project.script._upgrade_revs("heads", heads)  # type: ignore[arg-type]
    for number, step in enumerate(steps, upgrade.history_position(project, steps)):
        revision = step.revision
        while True:  # twice when the revision's round trip failed and the walk went back before it
            progress(NAME, number, len(project.scripts))
            fresh = (bind, revision.revision) not in done
            tested = fresh and revision.revision not in untested
            with_rows = fresh and revision.revision in rows.scope
            tables = snapshot.tables(before)
            held = contents.take(connection, tables) if tested or with_rows else None
            if with_rows and held is not None and held.empty():
                findings += data.fill(rows, connection, bind, revision, held.empty(),
                                      project.scratch.errors)
                held = contents.take(connection, tables)
            # Going back keeps the rows in the tables, where a rebuild would empty them: with rows,
            # the rebuild, so that what the data check sees does not depend on the way back.
            without_rows = not rows.filled.get(bind) and not rows.cached[0]
            mark = checkpoint.take(connection) if tested and marks[0] and without_rows else None
            yield from run("upgrade", step)
            after = snapshot.take(connection, context.version_table)
            if not tested:
                before = after
                break
            done.add((bind, revision.revision))
            assert held is not None
            # The rows the upgrade deleted are not the downgrade's to lose (only when there were rows).
            upgraded = contents.take(connection, set(tables) & set(snapshot.tables(after))) \
                if held.filled else None
            key = (bind, revision.revision)
            back = _hold(connection, context) if (
                without_rows and not project.options.reupgrade and project.scratch.dialect == "sqlite"
                and key not in real and key not in rows.suspects
                and not _OUTSIDE_TRANSACTION.search(read_source_leniently(revision.path))) else None
            yield from run("downgrade", RevisionStep(revision_map, revision, False), back is not None)
            clean = True
            try:
                _compare(before, snapshot.take(connection, context.version_table), after, revision,
                         findings)
                _compare_rows(held, contents.take(connection, tables), revision, findings, upgraded)
            except _Restart:
                clean = False
            if back and checkpoint.holds(connection, back.mark):
                # Alembic's own account of the heads follows the steps it ran: a re-upgrade step that
                # runs no upgrade() moves it (and the version table, rolled back with the rest) back.
                step = RevisionStep(revision_map, revision, True)
                step.migration_fn = _nothing
                current[:] = [Step("re-upgrade", step, bind, True)]
                yield step
                current.clear()
                if not _roll_back(connection, context, back):  # the downgrade took the savepoint away
                    real.add(key)
                    done.discard(key)
                    findings[:] = [f for f in findings if f.check != NAME
                                   or f.details.get("revision") != revision.revision]
                    raise _Restart
                if mark:  # at the state after the upgrade (`after`), checked
                    checkpoint.forget(connection, mark)
                before = after
                break
            if back:
                _roll_back(connection, context, back)  # nothing to roll back to: only let go of it
            if not clean:
                if mark and checkpoint.restore(connection, mark):
                    continue  # at the state before the revision (`before`): upgrade it, untested
                raise _Restart
            yield from run("re-upgrade", RevisionStep(revision_map, revision, True))
            again = snapshot.take(connection, context.version_table)
            if snapshot.differences(after, again):
                findings.append(_finding(
                    "roundtrip-reupgrade-differs", revision,
                    f"re-upgrade of `{revision.revision}` after its downgrade gives a different "
                    "schema: " + "; ".join(f"{d.what} {d.kind}" + (f" ({d.detail})" if d.kind == "changed"
                                                                  else "")
                                           for d in snapshot.differences(after, again)),
                    "upgrade() must give the same schema from the state before it; look for "
                    "objects that the downgrade leaves behind and the upgrade then skips"))
                raise _Restart
            if mark:
                checkpoint.forget(connection, mark)
            before = again
            break


def _hold(connection: Connection, context: MigrationContext) -> _Back | None:
    """A savepoint at the state after a revision's upgrade, for its downgrade to run in; None where
    there is none to take. Alembic is told the DDL is transactional, so that it neither begins nor
    commits a transaction for the downgrade: the walk ends it (_roll_back)."""
    transaction = compat.hold_transaction(connection)
    mark = checkpoint.take(connection, _AFTER_UPGRADE)
    if mark is None:
        if transaction is not None:
            transaction.commit()
        return None
    back = _Back(mark, transaction, context.impl.transactional_ddl)
    context.impl.transactional_ddl = True
    return back


def _roll_back(connection: Connection, context: MigrationContext, back: _Back) -> bool:
    """Undo what ran since `back`; False when that cannot be done (the downgrade ended the
    transaction, or took the savepoint away), and nothing changed."""
    restored = checkpoint.restore(connection, back.mark)
    context.impl.transactional_ddl = back.ddl
    if back.transaction is not None and back.transaction.is_active:
        back.transaction.commit()
    return restored


def _nothing(**_: Any) -> None:
    """The upgrade() of a re-upgrade step that the walk rolls back instead."""


@contextmanager
def _own_command(context: MigrationContext) -> Iterator[None]:
    """Run a downgrade or re-upgrade as its own `flask db downgrade` / `flask db upgrade` would.

    Alembic remembers, for one command, the named types (PostgreSQL enums, domains) that its
    create_table / drop_table events created or dropped, so that a type shared by two tables is
    created once. The round trip's downgrade and re-upgrade are separate commands for the user: with
    the first upgrade's memory, the re-upgrade would skip CREATE TYPE for a type the downgrade
    dropped. Afterwards the walk goes on with the memory of the plain upgrade from base.
    """
    kept = context.impl.memo
    context.impl.memo = {}
    try:
        yield
    finally:
        context.impl.memo = kept


def _compare(before: snapshot.Snapshot, back: snapshot.Snapshot, upgraded: snapshot.Snapshot,
             revision: Script, findings: list[Finding]) -> None:
    differences = snapshot.differences(before, back, upgraded)
    if not differences:  # the usual case: no need to know what the upgrade did
        return
    for difference in _causes(differences, snapshot.differences(before, upgraded),
                              source.renames_columns(revision.path)):
        rule, template = _MESSAGES[difference.kind]
        finding = _finding(
            rule, revision, template.format(rev=revision.revision, what=difference.what,
                                            detail=difference.detail),
            "make downgrade() undo exactly what upgrade() does, or mark the revision with a "
            "`# migcheck: irreversible` comment if it cannot be undone")
        # the object it is about, for ignores and baselines (suppress.object_of)
        named = {key: value for key in ("column", "name") if (value := getattr(difference, key))}
        findings.append(finding._replace(details={**finding.details, "table": difference.table,
                                                  **named}))
    raise _Restart  # re-upgrading on top of a wrong schema would only report the same thing


def _causes(differences: list[snapshot.Difference], upgrade: list[snapshot.Difference],
            renames_columns: bool = False) -> list[snapshot.Difference]:
    """The downgrade's differences, with what the upgrade dropped or renamed (and the downgrade did not
    put back) said as such: the upgrade's doing, not a downgrade that drops what it did not create.

    An index or constraint dropped and made again alike under a new name is a rename; a column only
    when the revision renames one (`renames_columns`): a dropped column and an added one of the same
    type are two changes, and renaming the new one back would not give the old one's values back."""
    dropped = [d for d in upgrade if d.kind == "missing"]
    left = {d.what for d in differences if d.kind == "extra"}
    made = [d for d in upgrade if d.kind == "extra" and d.what in left]
    renamed: dict[str, snapshot.Difference] = {}
    for old in dropped:
        twins = [new for new in made if old.detail is not None and new.detail == old.detail
                 and _label(new) == _label(old) and new.table == old.table
                 and (new.column is None) == (old.column is None)
                 and (old.column is None or renames_columns)
                 and all(new is not taken for taken in renamed.values())]
        if len(twins) == 1:
            renamed[old.what] = twins[0]
    gone = {d.what for d in dropped}
    found = []
    for difference in differences:
        if difference.kind == "extra" and any(difference.what == new.what for new in renamed.values()):
            continue  # said with the rename
        if difference.kind == "missing" and difference.what in renamed:
            new = renamed[difference.what]
            found.append(difference._replace(kind="not renamed back", detail=f"`{new.column or new.name}`"))
        elif difference.kind == "missing" and difference.what in gone:
            found.append(difference._replace(kind="not restored"))
        else:
            found.append(difference)
    return found


def _label(difference: snapshot.Difference) -> str:
    """"column", "index", "foreign key", ...: what a difference's object is."""
    return difference.what.partition(" `")[0]


def _compare_rows(before: contents.Contents, back: contents.Contents, revision: Script,
                  findings: list[Finding], upgraded: contents.Contents | None = None) -> None:
    differences = contents.differences(before, back, upgraded)
    for table, kind, number, had in differences:
        rule, template, hint = _ROW_MESSAGES[kind]
        finding = _finding(rule, revision, template.format(
            rev=revision.revision, table=table, count=number, had=had, s="" if number == 1 else "s"),
            hint)
        if kind == "deleted":
            finding = finding._replace(line=source.deleting_line(revision.path, table)
                                       or _line_of(revision.path, "def upgrade"))
        findings.append(finding._replace(
            severity="warning" if kind in ("changed", "deleted") else "error",
            details={"revision": revision.revision, "table": table, "rows": number}))
    if any(kind in ("left", "lost") for _, kind, _, _ in differences):
        raise _Restart  # the re-upgrade would only trip over the same rows


def _step_failure(exc: BaseException, current: Step, project: Project) -> Finding:
    revision = current.step.revision
    envrun.not_the_migrations(exc, f"the {current.action} of `{revision.revision}`", project)
    deadlock = upgrade.self_deadlock(exc, revision, project, f"{current.action} of `{revision.revision}`")
    if deadlock is not None:  # the round trip's own finding: the upgrade itself passed
        return deadlock._replace(check=NAME, rule=f"roundtrip-{current.action.replace('-', '')}-failed")
    where = upgrade.frame_in(exc, revision.path)
    error = upgrade.describe(exc)
    if current.action == "downgrade":
        rule, message = "roundtrip-downgrade-failed", f"downgrade of `{revision.revision}` raises {error}"
        hint = ("write a downgrade() that undoes upgrade(), or mark the revision with a "
                "`# migcheck: irreversible` comment if it cannot be undone")
        if upgrade.sqlite_limit(exc) or compat.unnamed_constraint(exc):  # the upgrade check's hint
            hint = upgrade.hint(exc, revision.module, project.scratch.dialect)
    else:
        rule = "roundtrip-reupgrade-failed"
        message = f"re-upgrade of `{revision.revision}` after its downgrade fails: {error}"
        hint = "the downgrade leaves something behind that upgrade() then trips over"
    finding = _finding(rule, revision, message, hint)
    return finding._replace(line=where[1]) if where else finding


def _finding(rule: str, revision: Script, message: str, hint: str) -> Finding:
    return Finding(NAME, rule, "error", message, relative(revision.path),
                   _line_of(revision.path, "def downgrade"), hint, {"revision": revision.revision})


def _irreversible(project: Project) -> tuple[set[str], list[Finding]]:
    """Revisions marked `# migcheck: irreversible`, and every revision before them."""
    by_id = {s.revision: s for s in project.scripts}
    untested: set[str] = set()
    findings = []
    for script in project.scripts:
        line = next((number for number, text in enumerate(read_source_leniently(script.path).splitlines(), 1)
                     if IRREVERSIBLE.search(text) and not irreversible_statement(text)), None)
        if line is None:
            continue
        below, queue = set(), [script.revision]
        while queue:
            rev = queue.pop()
            if rev not in below:
                below.add(rev)
                queue += [p for p in parents(by_id[rev]) if p in by_id]
        untested |= below
        findings.append(Finding(
            NAME, "roundtrip-irreversible", "info",
            f"downgrades of `{script.revision}` and {len(below) - 1} "
            f"revision{'' if len(below) == 2 else 's'} before it are not tested: it is marked "
            "irreversible", relative(script.path), line))
    return untested, findings


def _line_of(path: str, pattern: str | re.Pattern[str]) -> int | None:
    for number, line in enumerate(read_source_leniently(path).splitlines(), 1):
        if (pattern.search(line) if isinstance(pattern, re.Pattern) else line.startswith(pattern)):
            return number
    return None
