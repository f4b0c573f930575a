"""Upgrade from base to head on the empty scratch database, as `flask db upgrade` would."""

from __future__ import annotations

import logging.config
import os
import re
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Protocol
from unittest import mock

import sqlalchemy as sa
from alembic.operations import BatchOperations, Operations, ops
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import Script

from migcheck import compat
from migcheck.databases import dialects, faults, lockwait
from migcheck.errors import InternalError, ProjectExit
from migcheck.findings import Finding
from migcheck.progress import Progress, silent
from migcheck.project import Project, created, envrun, source
from migcheck.project.envrun import run_env
from migcheck.usercode import calling_line, relative, user_location

NAME = "upgrade"

_IN_FAILED_TRANSACTION = "25P02"
_CAUGHT_HINT = ("fix that statement: on PostgreSQL a migration cannot catch a database error and go on "
                "(run a statement that may fail in a savepoint: `with op.get_bind().begin_nested(): ...`)")

# What SQLite says when a migration asks for an ALTER it cannot do outside batch mode.
_SQLITE_LIMITS = (
    "No support for ALTER of constraints",
    'near "ALTER": syntax error',
    "Cannot add a NOT NULL column with default value NULL",
    "Cannot add a UNIQUE column",
    "Cannot add a column with non-constant default",
)

# A constraint without a name (compat.unnamed_constraint): autogenerate writes `None` where the
# model leaves a constraint unnamed.
_UNNAMED_HINT = ("the constraint has no name: autogenerate writes `None` where the model leaves a "
                 "constraint unnamed, and Alembic can neither drop such a constraint nor create one "
                 "in batch mode; pass its name (for one the database named itself, the name its "
                 "catalog shows), and name the models' constraints with "
                 "`MetaData(naming_convention=...)` so that autogenerate writes names")


class Observer(Protocol):
    """What another check does around each upgrade step of a walk (e.g. safety watches its
    operations). Not called for the downgrades and re-upgrades of the round trip."""

    def before(self, step: RevisionStep, context: MigrationContext) -> None: ...

    def after(self, step: RevisionStep, context: MigrationContext) -> None: ...


def check(project: Project, observers: Sequence[Observer] = (), progress: Progress = silent
          ) -> list[Finding]:
    current: list[RevisionStep] = []

    def upgrade_to_heads(heads: tuple[str, ...], context: MigrationContext) -> Iterator[RevisionStep]:
        # Alembic runs each step as it is yielded, so `current` names the one that fails.
        steps = project.script._upgrade_revs("heads", heads)  # type: ignore[arg-type]
        for number, step in enumerate(steps, history_position(project, steps)):
            progress(NAME, number, len(project.scripts))
            current[:] = [step]
            yield from observed(step, context, observers)
        current.clear()

    try:
        run_env(project, upgrade_to_heads)
    except (InternalError, faults.CouldNotCheck):
        raise
    except Exception as exc:
        return [failure(exc, current[0] if current else None, project)]
    return []


class Caught:
    """Operations that raised inside a revision's upgrade() which the revision caught and went on
    (try/except around `op.*`): it did less than it says, which explains the errors that follow.

    An observer of the walk; `catching` routes every operation through `raised`. An exception seen
    there whose step still ended is one the revision caught. A caught missing table that no revision
    creates is the history not starting from an empty database: raised again, for `failure` to say so.
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self.findings: list[Finding] = []
        self._revision: Script | None = None
        self._raised: list[tuple[int | None, BaseException]] = []

    def before(self, step: RevisionStep, context: MigrationContext) -> None:
        self._revision, self._raised = step.revision, []

    def raised(self, exc: BaseException) -> None:
        revision = self._revision
        if revision is not None:
            self._raised.append((calling_line((revision.path, os.path.realpath(revision.path))), exc))

    def after(self, step: RevisionStep, context: MigrationContext) -> None:
        revision, raised = step.revision, self._raised
        self._revision, self._raised = None, []
        for line, exc in raised:
            table = dialects.missing_table(exc)
            if table is not None and not created.creators(self.project.scripts, table):
                raise exc  # not this revision's defect: the history needs its starting schema
            finding = Finding(
                NAME, "upgrade-caught-error", "info",
                f"upgrade of `{revision.revision}` caught {describe(exc)} and went on: it did less than "
                "it says, which may explain errors reported after it", relative(revision.path), line,
                "let the error stop the upgrade, or check first whether the operation applies",
                {"revision": revision.revision, "error": describe(exc)})
            if finding not in self.findings:  # the round trip may run it again after a rebuild
                self.findings.append(finding)


@contextmanager
def catching(caught: Caught) -> Iterator[Caught]:
    """Route every `op.*` / `batch_op.*` call through `caught` while the walk runs."""
    original = Operations.invoke

    def invoke(self: Any, operation: ops.MigrateOperation) -> Any:
        try:
            return original(self, operation)
        except Exception as exc:
            caught.raised(exc)
            raise

    # Both: BatchOperations derives from Operations in old Alembic, from AbstractOperations in new.
    with mock.patch.object(Operations, "invoke", invoke), \
            mock.patch.object(BatchOperations, "invoke", invoke):
        yield caught


def history_position(project: Project, steps: list[RevisionStep]) -> int:
    """The place in the whole history of the first step (the database may hold earlier ones)."""
    return len(project.scripts) - len(steps) + 1


def observed(step: RevisionStep, context: MigrationContext, observers: Sequence[Observer]
             ) -> Iterator[RevisionStep]:
    """Yield the step to alembic (which runs it before asking for the next) between the observers'
    `before` and `after`."""
    for observer in observers:
        observer.before(step, context)
    yield step
    for observer in observers:
        observer.after(step, context)


def failure(exc: BaseException, step: RevisionStep | None, project: Project) -> Finding:
    """A finding for a migration step (or env.py) that raised; CouldNotCheck for a fault that is not
    the migrations' (a full disk, no memory, a lost connection)."""
    envrun.not_the_migrations(exc, f"upgrading to `{step.revision.revision}`" if step else "running env.py",
                       project)
    if step is None:
        path = os.fspath(project.directory / "env.py")
        where = frame_in(exc, path) or user_location(exc)
        return Finding(NAME, "upgrade-env-failed", "error",
                       f"env.py failed before any migration ran: {describe(exc)}",
                       where[0] if where else relative(path), where[1] if where else None,
                       _env_hint(exc))
    revision = step.revision
    deadlock = self_deadlock(exc, revision, project, f"upgrade to `{revision.revision}` ({revision.doc})")
    if deadlock is not None:
        return deadlock
    foreign = dialects.another_database(exc, revision.module) if project.scratch.dialect == "sqlite" \
        else None
    if foreign is not None and not sqlite_limit(exc):  # nothing after it can be checked on SQLite
        where = frame_in(exc, revision.path)
        return Finding(
            NAME, "upgrade-needs-server", "fatal",
            f"could not check on SQLite: revision `{revision.revision}` uses {foreign.what}; run with "
            f"--db-url (SQLite says {describe(exc)})",
            where[0] if where else relative(revision.path), where[1] if where else None,
            hint(exc, revision.module, project.scratch.dialect),
            {"revision": revision.revision, "error": describe(exc)})
    if project.scratch.dialect == "sqlite" and (dangling := _dangling_reference(exc, revision, project)):
        return dangling
    real = _aborting_error(exc, project.scratch.errors)
    caught = "" if real is exc else (" (that error was caught, and PostgreSQL then refused the rest of "
                                     "the transaction: current transaction is aborted)")
    exc = real
    where = frame_in(exc, revision.path) or (user_location(exc) if caught else None)  # maybe an older file
    table = dialects.missing_table(exc) or next(
        (t for t in dialects.referenced_tables(exc) if not created.creators(project.scripts, t)), None)
    if table is not None and not created.creators(project.scripts, table):
        return _needs_start(exc, revision, table, where, project)
    statement = getattr(exc, "statement", None)
    details = {"revision": revision.revision, "error": describe(exc)}
    if statement:
        details["statement"] = " ".join(str(statement).split())
    return Finding(
        NAME, "upgrade-failed", "error",
        f"upgrade to `{revision.revision}` ({revision.doc}) failed: {describe(exc)}{caught}",
        where[0] if where else relative(revision.path), where[1] if where else None,
        _CAUGHT_HINT if caught else hint(exc, revision.module, project.scratch.dialect, table, project),
        details,
    )


def cut_short(exc: BaseException, project: Project) -> bool:
    """Whether `exc` is a statement the lock-wait watchdog cancelled: the revision waited for
    itself, whatever rows the tables held."""
    watchdog = project.scratch.watchdog
    return watchdog is not None and watchdog.pending(exc)


def self_deadlock(exc: BaseException, revision: Script, project: Project, doing: str) -> Finding | None:
    """If `exc` is a statement the lock-wait watchdog cancelled: a statement of the revision on
    another connection than the migration's waited for a lock the migration's own transaction
    holds, and `flask db upgrade` (or downgrade: `doing`) would wait forever (see lockwait.py)."""
    watchdog = project.scratch.watchdog
    deadlock = watchdog.take(exc) if watchdog is not None else None
    if deadlock is None:
        return None
    # The app's session keeps the cancelled connection in a failed transaction: ended now, before a
    # rebuild of the scratch databases ends it from the server and the app context's teardown fails.
    project.db.session.remove()
    where = frame_in(exc, revision.path) or user_location(exc)
    command = "downgrade" if doing.startswith("downgrade") else "upgrade"
    return Finding(
        NAME, "upgrade-self-deadlock", "error",
        f"{doing} waits for itself: `{deadlock.waiting}` runs "
        f"on another connection than the migration's (the app's `db.session` or engine) and waits for "
        f"{deadlock.lock}, which the migration's own transaction holds (its last statement: "
        f"`{deadlock.holding}`) until the revision returns; `flask db {command}` hangs here forever "
        f"(migcheck cancelled the statement after {lockwait.GRACE:.0f} s)",
        where[0] if where else relative(revision.path), where[1] if where else None,
        "run it on the migration's own connection: `op.get_bind().execute(...)` (or `op.execute`) "
        "instead of `db.session` / `db.engine`",
        {"revision": revision.revision, "lock": deadlock.lock, "statement": deadlock.waiting,
         "holding": deadlock.holding, "error": describe(exc)})


def _needs_start(exc: BaseException, revision: Script, table: str, where: tuple[str, int] | None,
                 project: Project) -> Finding:
    """A revision that acts on a table no revision creates: the history does not start from an empty
    database, and migcheck was not told what it starts from (or what it was told lacks the table)."""
    given = project.start
    creates = f"neither the starting schema {given.shown} nor any revision creates" if given \
        else "no revision creates"
    message = (f"upgrade to `{revision.revision}` ({revision.doc}) acts on table `{table}`, which "
               f"{creates} ({describe(exc)}): the history does not start from an empty database, so "
               "migcheck could not check it")
    fix = (f"add `{table}` to the starting schema in {given.shown} ({given.origin})" if given else
           "give migcheck the schema the first revision expects (e.g. a dump of an old release, or "
           "the tables `db.create_all()` made at install): `--start-from seed.sql`, or "
           "`start_from = \"seed.sql\"` in [tool.migcheck]; a SQL file (`{dialect}` in the path picks "
           "one per database type) or `module:function`, called with a SQLAlchemy Connection. If it "
           "stamps alembic_version, the walk starts after that revision")
    return Finding(NAME, "upgrade-needs-start", "fatal", message,
                   where[0] if where else relative(revision.path), where[1] if where else None, fix,
                   {"revision": revision.revision, "table": table, "error": describe(exc)})


def _dangling_reference(exc: BaseException, revision: Script, project: Project) -> Finding | None:
    """SQLite accepts a foreign key to a table that does not exist, and fails only when a later revision
    uses it (with foreign keys on): the cause is the earlier revision that made the reference. (A
    statement that names the missing table itself is another story: see `_needs_start`.)"""
    table = dialects.missing_table(exc)
    if table is None or re.search(rf"\b{re.escape(table)}\b", str(getattr(exc, "statement", "") or "")):
        return None
    earlier = list(project.script.iterate_revisions(revision.revision, "base"))[1:]
    earlier.reverse()  # base first
    if created.creators(earlier, table):
        return None  # created (and maybe dropped since): not a dangling reference
    for script in earlier:
        line = source.foreign_key_to(script.path, table)
        if line is not None and not created.creators(project.scripts, table):
            # as PostgreSQL and MySQL say at that revision: the history needs a starting schema
            return _needs_start(exc, script, table, (relative(script.path), line), project)
        if line is not None:
            return Finding(
                NAME, "upgrade-dangling-foreign-key", "error",
                f"upgrade to `{revision.revision}` ({revision.doc}) failed: {describe(exc)}: revision "
                f"`{script.revision}` made a foreign key to `{table}`, which only a later revision "
                "creates (SQLite accepted it there; PostgreSQL and MySQL refuse it)",
                relative(script.path), line,
                f"create `{table}` before the foreign key refers to it, or refer to the right table (if "
                "the history starts from tables made outside the migrations, give them with "
                "--start-from); run migcheck with --db-url on your real database type, where the "
                "reference fails where it is made",
                {"revision": script.revision, "table": table, "error": describe(exc)})
    return None


def _env_hint(exc: BaseException) -> str:
    if any(frame.f_code.co_filename == logging.config.__file__
           for frame, _ in traceback.walk_tb(exc.__traceback__)):
        return ("restore or fix alembic.ini in the migrations directory (env.py's fileConfig() reads "
                "its logging sections); `flask db upgrade` fails the same way")
    return "fix env.py; `flask db upgrade` fails the same way"


def _aborting_error(exc: BaseException, errors: list[sa.exc.DBAPIError]) -> BaseException:
    """On PostgreSQL a failed statement aborts the transaction: when a migration catches that error,
    every later statement fails with "current transaction is aborted". The real error came first."""
    if _sqlstate(exc) != _IN_FAILED_TRANSACTION:
        return exc
    earlier = [error for error in errors if _sqlstate(error) not in (None, _IN_FAILED_TRANSACTION)]
    return earlier[-1] if earlier else exc


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)  # psycopg 3 / psycopg2


def describe(exc: BaseException) -> str:
    """The error as a finding says it, the same in every run: without the memory addresses of the
    objects it shows (SQLAlchemy's "<… object at 0x7f…>"), which change from run to run."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        # PostgreSQL adds the statement with a caret under the error; the finding shows the statement.
        return f"{type(exc.orig).__name__}: {str(exc.orig).strip().splitlines()[0]}"
    if isinstance(exc, ProjectExit):
        return str(exc)
    return _ADDRESS.sub("", f"{type(exc).__name__}: {exc}".rstrip(": "))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+(?=>)")


def sqlite_limit(exc: BaseException) -> bool:
    """An ALTER that SQLite cannot do outside batch mode."""
    return any(limit in str(exc) for limit in _SQLITE_LIMITS)


def hint(exc: BaseException, module: ModuleType, scratch_dialect: str, table: str | None = None,
         project: Project | None = None) -> str:
    if compat.unnamed_constraint(exc):
        return _UNNAMED_HINT
    foreign = dialects.written_for_another_database(exc, module) if scratch_dialect == "sqlite" else None
    if foreign and not sqlite_limit(exc):
        return foreign
    if sqlite_limit(exc):
        return ("SQLite cannot ALTER this in place: wrap the operations in "
                "`with op.batch_alter_table(...)` (Flask-Migrate writes them that way with "
                "Migrate(render_as_batch=True)), or run migcheck on your real database type "
                "with --db-url")
    later = created.creators(project.scripts, table) if table and project else []
    if later:
        made_by = ", ".join(f"`{s.revision}` ({relative(s.path)})" for s in later)
        if project is not None and project.start is not None:  # the start may be stamped past it
            return (f"`{table}` is created by {made_by}, which has not run before this revision on the "
                    f"starting schema {project.start.shown}: add the table there if the schema is at "
                    "a later revision, else make this revision come after it (its down_revision)")
        return (f"`{table}` is created by {made_by}, which does not run before this revision: make this "
                "revision come after it (its down_revision), or create the table here")
    return "fix the revision so that `flask db upgrade` runs from an empty database"


def frame_in(exc: BaseException, path: str) -> tuple[str, int] | None:
    """The innermost traceback line inside `path` (a revision file or env.py)."""
    target = os.path.realpath(path)
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if os.path.realpath(frame.f_code.co_filename) == target:
            found = (relative(path), lineno)
    return found
