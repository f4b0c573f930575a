"""data: the revisions not deployed yet, run against tables that have rows.

Production tables have rows, and the migrations that break a deploy are the ones that pass on an
empty database: a NOT NULL column added without a default, a unique index over values that repeat,
a type change that cannot convert what is stored. The round-trip walk (checks/roundtrip.py) calls
this module before each in-scope revision's upgrade: every table that exists and has no rows gets a
few generated rows (migcheck/state/rows.py), then the revision is upgraded, downgraded and upgraded again
with them there; no second walk, no second env.py run.

A step that fails with generated rows present is only a suspect: the walk rebuilds the database up
to the revision without rows and runs it again. If the same step passes there, the rows made it
fail, and that is this check's finding at the failing statement's line; if it fails there too, the
upgrade or round-trip check reports it as usual. So generated rows never make a clean history fail.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import sqlalchemy as sa
from alembic.runtime.migration import RevisionStep
from alembic.script import Script

from migcheck import compat
from migcheck.checks import upgrade
from migcheck.findings import Finding
from migcheck.project import Project
from migcheck.state import rows
from migcheck.usercode import relative

NAME = "data"

Key = tuple[str | None, str]  # (bind, revision)

# The round trip's findings about rows, which the data check reports too when it runs alone.
ROW_RULES = ("roundtrip-downgrade-leaves-rows", "roundtrip-downgrade-loses-rows",
             "roundtrip-upgrade-deletes-rows",
             "roundtrip-downgrade-changes-rows")


class Suspect(NamedTuple):
    action: str  # the step that failed with rows: "upgrade", "downgrade" or "re-upgrade"
    failure: Finding  # how it failed (line, statement, error), as the upgrade check words it
    tables: tuple[str, ...]  # the tables that had rows when it failed


class State(NamedTuple):
    """What the walk and this check share during one run; the walk only calls the functions below."""
    scope: frozenset[str]  # the revisions whose steps run with rows
    domains: dict[str | None, rows.Domains]  # bind -> the values the head models allow in columns
    filled: dict[str | None, set[str]]  # bind -> tables holding generated rows right now
    suspects: dict[Key, Suspect]  # failed with rows; to run again without
    given_up: set[tuple[str | None, str]]  # (bind, table) whose rows cannot be generated: not retried
    reported: set[tuple[str, str]]  # info lines given already: (table, reason)
    cached: list[bool]  # [True] while the database from the cache holds rows an earlier run generated


def new_state(project: Project, scope: frozenset[str], cached_rows: bool = False) -> State:
    return State(scope, _model_domains(project) if scope else {}, {}, {}, set(), set(), [cached_rows])


def _model_domains(project: Project) -> dict[str | None, rows.Domains]:
    """The values the head models allow in their columns (Enum members, `col IN (...)` CHECK
    constraints), per bind, table and column: where a model still maps a column, generated rows
    hold what the app would store there, e.g. a VARCHAR that a later revision makes an enum."""
    domains: dict[str | None, rows.Domains] = {}
    for bind, table in compat.bound_tables(project.db):
        found = domains.setdefault(bind, {}).setdefault(table.name, {})
        for column in table.columns:
            type_ = compat.stored_type(column.type)
            if isinstance(type_, sa.Enum) and type_.enums:
                found[column.name] = list(type_.enums)
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                allowed = rows.in_list(str(constraint.sqltext))
                if allowed and allowed[0] in table.columns:
                    found.setdefault(allowed[0], allowed[1])
    return domains


def restarted(state: State) -> None:
    """The scratch databases were emptied: no generated rows are left."""
    state.filled.clear()
    state.cached[0] = False


def fill(state: State, connection: sa.engine.Connection, bind: str | None, revision: Script,
         empty: list[str], errors: list[sa.exc.DBAPIError]) -> list[Finding]:
    """Before an in-scope revision's upgrade: rows in each of the `empty` tables (info lines for the
    tables whose rows cannot be generated). Nothing while a suspect waits to be run without rows.
    `errors`: the scratch area's record of database errors, which the refused inserts stay out of."""
    if revision.revision not in state.scope or state.suspects:
        return []
    todo = [table for table in empty if (bind, table) not in state.given_up]
    if not todo:
        return []
    recorded = len(errors)
    populated = rows.populate(connection, todo, state.domains.get(bind, {}))
    del errors[recorded:]
    state.filled.setdefault(bind, set()).update(populated.filled)
    findings = []
    for table, reason in populated.skipped:
        state.given_up.add((bind, table))
        if (table, reason) not in state.reported:
            state.reported.add((table, reason))
            findings.append(Finding(
                NAME, "data-table-not-populated", "info",
                f"table `{table}` stays empty for the data check: its rows cannot be generated: {reason}",
                details={"table": table, "revision": revision.revision}))
    return findings


def suspect(state: State, key: Key, action: str, exc: BaseException, step: RevisionStep,
            project: Project) -> bool:
    """A step failed. True when generated rows were there (first time for this revision): the walk
    then rebuilds and runs the revision again without rows."""
    bind = key[0]
    if not (state.filled.get(bind) or state.cached[0]) or key in state.suspects:
        state.suspects.pop(key, None)  # failed without rows as well: the usual finding says it
        return False
    state.suspects[key] = Suspect(action, upgrade.failure(exc, step, project),
                                  tuple(sorted(state.filled.get(bind, ()))))
    return True


def drop_suspects(state: State) -> None:
    """The round trip found the revision wrong before the step that failed with rows was reached
    again without them (only the revision being run again can be wrong while a suspect waits)."""
    state.suspects.clear()


def passed(state: State, key: Key, action: str, revision: Script) -> Finding | None:
    """A step passed. The finding when it is the step that failed with rows (in scope only)."""
    found = state.suspects.get(key)
    if found is None or found.action != action:
        return None
    del state.suspects[key]
    if revision.revision not in state.scope:
        return None  # generated rows outlived their revisions; deployed history is not this check's
    return _finding(found, revision)


def _finding(found: Suspect, revision: Script) -> Finding:
    failure = found.failure
    error = failure.details.get("error", "")
    statement = failure.details.get("statement", "")
    table = _culprit(statement, error, found.tables)
    where = f"`{table}` has rows" if table else "the tables have rows"
    return Finding(
        NAME, "data-fails-with-rows", "error",
        f"{found.action} of `{revision.revision}` fails when {where} (it passes on empty tables): "
        f"{error}",
        failure.path or relative(revision.path), failure.line, _hint(error, table),
        {**failure.details, "table": table, "action": found.action})


def _culprit(statement: str, error: str, tables: tuple[str, ...]) -> str | None:
    """The table with rows that the failing statement (else the error) names; batch mode's copy
    `_alembic_tmp_<table>` counts as the table."""
    for text in (statement, error):
        named = [(match.start(), table) for table in tables
                 for match in [re.search(_NAMED.format(re.escape(table)), text)] if match]
        if named:
            return min(named)[1]
    return None


_NAMED = r"(?<![\w])(?:_alembic_tmp_)?[\"`\[]?{}[\"`\]]?(?![\w])"

_HINTS = (
    (re.compile(r"NOT NULL|null value|cannot be null|doesn't have a default|contains null", re.I),
     "existing rows have no value for the column: give it a server_default (e.g. "
     "`server_default=sa.text('0')`), or add it nullable, backfill it in the revision "
     "(`op.execute(\"UPDATE ...\")`) and then make it NOT NULL"),
    (re.compile(r"UNIQUE|duplicate", re.I),
     "existing values repeat: de-duplicate them in the revision before adding the constraint"),
    (re.compile(r"invalid input|cannot be cast|Incorrect \w+ value|Data truncated|out of range|"
                r"too long|datatype mismatch", re.I),
     "stored values do not convert to the new type: convert them in the revision (e.g. "
     "`postgresql_using=...` with an expression that handles every stored value), or add a new "
     "column, backfill it and swap"),
    (re.compile(r"FOREIGN KEY|foreign key", re.I),
     "existing rows refer to rows that do not exist: fix or delete them in the revision before "
     "adding the foreign key"),
)


def _hint(error: str, table: str | None) -> str:
    for pattern, hint in _HINTS:
        if pattern.search(error):
            return hint
    on = f" in `{table}`" if table else ""
    return (f"make the revision work on a database that has rows{on}: backfill or convert the "
            "existing rows in the revision before the statement that fails")


# The safety check's rules that predict a failure on tables with rows, which this check can prove.
# and what the safety check observed on that table: a revision that fails there is rewritten anyway
_PREDICTIONS = ("safety-add-not-null-column", "safety-set-not-null", "safety-add-unique",
                "safety-change-type", "safety-table-rewrite", "safety-lock-timeout", "safety-lock-held",
                "safety-not-online")


def supersede(findings: list[Finding]) -> list[Finding]:
    """`findings` without the safety predictions this check proved: the same revision failing on
    the same table with rows is one problem, reported once, with the evidence."""
    proven = {(f.details.get("revision"), f.details.get("table"))
              for f in findings if f.rule == "data-fails-with-rows"}
    return [f for f in findings if f.rule not in _PREDICTIONS
            or (f.details.get("revision"), f.details.get("table")) not in proven]
