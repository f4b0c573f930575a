"""Run the project's own env.py in-process, with a function of ours in place of a command.

Going through env.py (rather than building a MigrationContext ourselves) is what makes migcheck
honour the project's `include_object`, `compare_type`, version table, `Migrate(...)` options and
multi-database setup, exactly as `flask db upgrade` / `flask db check` do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from unittest import mock

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep

from migcheck.project import Project

MigrationsFn = Callable[[tuple[str, ...], MigrationContext], Iterable[RevisionStep]]


def run_env(project: Project, fn: MigrationsFn, **defaults: Any) -> None:
    """Execute env.py once; env.py calls `fn(heads, context)` for each database it migrates."""
    # env.py calls logging.config.fileConfig(alembic.ini), which would print every migration step
    # and disable the loggers that exist already; the report says what matters instead.
    environment = EnvironmentContext(project.config, project.script, fn=fn, as_sql=False)
    configure = environment.configure

    def configure_with_defaults(*args: Any, **kwargs: Any) -> None:
        for key, value in defaults.items():  # what env.py says explicitly wins
            kwargs.setdefault(key, value)
        configure(*args, **kwargs)

    # An instance attribute, because alembic's `context` module proxies exactly this class.
    environment.configure = configure_with_defaults  # type: ignore[method-assign]
    with mock.patch("logging.config.fileConfig"), environment:
        project.script.run_env()
