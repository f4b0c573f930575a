"""Run the project's own env.py in-process, with a function of ours in place of a command.

Going through env.py (rather than building a MigrationContext ourselves) is what makes migcheck
honour the project's `include_object`, `compare_type`, version table, `Migrate(...)` options and
multi-database setup, exactly as `flask db upgrade` / `flask db check` do.
"""

from __future__ import annotations

import logging
import logging.config
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any
from unittest import mock

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep

from migcheck import compat
from migcheck.databases import faults
from migcheck.errors import InternalError, ProjectExit, Terminated
from migcheck.project import Project
from migcheck.usercode import is_user_code

MigrationsFn = Callable[[tuple[str, ...], MigrationContext], Iterable[RevisionStep]]


def run_env(project: Project, fn: MigrationsFn, passing: tuple[type[Exception], ...] = (),
            **defaults: Any) -> None:
    """Execute env.py once; env.py calls `fn(heads, context)` for each database it migrates.

    `fn` is migcheck's own code: an exception raised in it (not in a callback of the user's it
    calls) is an InternalError, also when env.py catches it; `passing` are exceptions `fn` raises
    on purpose to end the run, let through as they are. An exit() that env.py or a revision calls
    is a ProjectExit, which the checks report as the step failing.
    """
    failed: list[Exception] = []
    environment = EnvironmentContext(project.config, project.script,
                                     fn=_own_work(fn, passing, failed, project), as_sql=False)
    configure = environment.configure

    def configure_with_defaults(*args: Any, **kwargs: Any) -> None:
        for key, value in defaults.items():  # what env.py says explicitly wins
            kwargs.setdefault(key, value)
        configure(*args, **kwargs)

    # An instance attribute, because alembic's `context` module proxies exactly this class.
    environment.configure = configure_with_defaults  # type: ignore[method-assign]
    try:
        with _checked_file_config(), environment:
            project.script.run_env()
    except Terminated:
        raise
    except SystemExit as exc:  # the traceback kept, so the finding points at the exit() call
        raise ProjectExit(f"exit() was called (SystemExit: {exc.code})").with_traceback(
            exc.__traceback__) from None
    if failed:  # env.py caught it and went on
        raise failed[0]


def _own_work(fn: MigrationsFn, passing: tuple[type[Exception], ...], failed: list[Exception],
              project: Project) -> MigrationsFn:
    """`fn` as alembic calls it: migcheck's code runs between the steps alembic runs (each step
    runs when it is yielded), with no statement of migcheck's prepared on the server (see
    compat.unprepared), and its failures recorded in `failed` as InternalError (or CouldNotCheck,
    when the disk, the memory or the server connection failed it)."""
    def steps(heads: tuple[str, ...], context: MigrationContext) -> Iterator[RevisionStep]:
        walk: Iterator[RevisionStep] | None = None
        try:
            while True:
                try:
                    with compat.unprepared(context.connection):
                        walk = walk or iter(fn(heads, context))
                        step = next(walk)
                except StopIteration:
                    return
                except passing:
                    raise
                except Exception as exc:
                    if _raised_in_user_code(exc):  # a callback of env.py's (include_object, ...)
                        raise
                    failed.append(_not_ours(exc, project))
                    raise failed[-1] from exc
                yield step
        finally:
            close = getattr(walk, "close", None)
            if close is not None:
                close()

    return steps


def not_the_migrations(exc: BaseException, doing: str, project: Project) -> None:
    """Raise faults.CouldNotCheck if `exc` is a fault of the environment (see databases/faults.py)."""
    server = project.scratch.server
    faults.check(exc, doing, os.fspath(project.scratch.root.parent), server.backend if server else None)


def _not_ours(exc: Exception, project: Project) -> Exception:
    """What an exception raised in migcheck's own code is: the environment's fault, else migcheck's bug."""
    try:
        not_the_migrations(exc, "migcheck read the scratch database", project)
    except faults.CouldNotCheck as fault:
        return fault
    return InternalError(str(exc))


def _raised_in_user_code(exc: BaseException) -> bool:
    """Whether a frame of the user's code is in the traceback (from migcheck's frame inward)."""
    return any(is_user_code(frame.f_code.co_filename) for frame, _ in traceback.walk_tb(exc.__traceback__))


LoggingState = dict[logging.Logger, tuple[int, list[logging.Handler], bool, bool]]


@contextmanager
def _checked_file_config() -> Iterator[None]:
    """env.py's `fileConfig(alembic.ini)` runs for real, so that a missing or broken alembic.ini fails
    here as it fails `flask db upgrade`; but it leaves no trace: it would print every migration step,
    disable the loggers that exist already and open the log files alembic.ini names."""
    real = logging.config.fileConfig

    def file_config(*args: Any, **kwargs: Any) -> None:
        saved = _logging_state()
        try:
            # Keep the handlers that exist (fileConfig would close them all); log files stay unopened.
            with mock.patch.object(logging.FileHandler, "_open", _open_devnull), \
                    mock.patch.object(logging.config, "_clearExistingHandlers", lambda: None,
                                      create=True):
                real(*args, **kwargs)
        finally:
            _restore(saved)

    with mock.patch("logging.config.fileConfig", file_config):
        yield


def _loggers() -> list[logging.Logger]:
    existing = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(lg for lg in existing if isinstance(lg, logging.Logger))]


def _logging_state() -> LoggingState:
    return {lg: (lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in _loggers()}


def _restore(saved: LoggingState) -> None:
    """Every logger as it was; the ones fileConfig created as if it had not configured them. The
    handlers it made are closed (env.py runs again at each rebuild of the round trip)."""
    kept = {handler for _, handlers, _, _ in saved.values() for handler in handlers}
    for logger in _loggers():
        level, handlers, propagate, disabled = saved.get(logger, (logging.NOTSET, [], True, False))
        for handler in set(logger.handlers) - kept:
            handler.close()
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled


def _open_devnull(handler: logging.FileHandler) -> IO[str]:
    """A FileHandler's stream that writes nowhere (and creates no file)."""
    return open(os.devnull, "a", encoding=handler.encoding)  # the handler closes it
