"""What the checks work on: the loaded app, its Flask-Migrate setup and the scratch databases."""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Any, NamedTuple

from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionMap
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from migcheck.databases.scratch import Scratch
from migcheck.errors import UsageError
from migcheck.project import revisions
from migcheck.project.start import Start, resolve
from migcheck.usercode import relative, user_location


class Options(NamedTuple):
    compare_server_default: bool = True
    db_url: str | None = None  # a PostgreSQL / MySQL server for the scratch databases (else SQLite)
    sources: tuple[str, ...] = ()  # more directories the imports check searches for models
    cache: bool = True  # resume from the migrated database of an earlier run (see cache.py)
    reupgrade: bool = False  # re-upgrade every round-tripped revision (see checks/roundtrip.py)
    since: str | None = None  # the revisions after this one are the undeployed ones (see scope.py)
    git_base: str | None = None  # else the revision files new relative to this git ref
    target: str | None = None  # the database type the project deploys on (see checks/safety.py)
    start_from: str | None = None  # the schema the history starts from (see start.py), as given
    # where an option's value came from, for error messages: option -> e.g. "MIGCHECK_DATABASE_URL"
    origins: dict[str, str] = {}

    def origin(self, option: str) -> str:
        """What to blame for an option's value: its flag unless it came from elsewhere."""
        return self.origins.get(option, "--" + option.replace("_", "-"))


class Project(NamedTuple):
    app: Flask
    db: SQLAlchemy
    directory: Path
    config: Config
    script: ScriptDirectory
    scripts: list[Script]  # every revision file, duplicates included, in directory order
    scratch: Scratch
    options: Options
    found: tuple[str, ...] = ()  # what migcheck found by looking, for the summary
    start: Start | None = None  # the schema the first revision expects, if not an empty database

    @property
    def binds(self) -> list[str | None]:
        return list(self.scratch.configured)

    @property
    def migrate_args(self) -> dict[str, Any]:
        """The keyword arguments given to `Migrate(...)`; env.py passes them to configure()."""
        return dict(self.app.extensions["migrate"].configure_args)


def open_project(app: Flask, scratch: Scratch, directory: str | None, options: Options) -> Project:
    """Find the app's Flask-Migrate setup; call inside an app context (after appload.load_migrate_app)."""
    migrate = app.extensions["migrate"]
    path, found = (Path(directory), ()) if directory else _migrations_directory(app, migrate.directory)
    if not (path / "env.py").is_file():
        relative_to = "" if path.is_absolute() else f", relative to {os.getcwd()}"
        raise UsageError(
            f"No Flask-Migrate migrations directory at {os.fspath(path)!r} (from "
            f"{options.origin('directory')}{relative_to}): it has no env.py. Run migcheck from your "
            "project's root, pass the directory that holds env.py, or create it with `flask db init`."
        )
    try:
        config = migrate.migrate.get_config(os.fspath(path))
        script = ScriptDirectory.from_config(config)
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise UsageError(
            f"Could not read {relative(os.fspath(path / 'alembic.ini'))}: {type(exc).__name__}: "
            f"{_one_line(exc)}. Alembic reads it as an INI file in UTF-8: every setting under a "
            "[section] header, each section once. Fix the file (`flask db init` writes a fresh one)."
        ) from exc
    scripts = _load_revision_files(script, options.cache)
    # Alembic would import every revision file again to build its map; hand it the ones we have.
    script.revision_map = RevisionMap(lambda: scripts)
    return Project(app=app, db=migrate.db, directory=path, config=config, script=script,
                   scripts=scripts, scratch=scratch, options=options, found=found,
                   start=_start(scratch, options))


def _start(scratch: Scratch, options: Options) -> Start | None:
    if not options.start_from:
        return None
    origin = options.origin("start_from")
    if None not in scratch.configured:
        raise UsageError(f"{origin}: the starting schema is run on the default database "
                         "(SQLALCHEMY_DATABASE_URI), and the app configures none.")
    return resolve(options.start_from, scratch.dialect, origin)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _migrations_directory(app: Flask, named: str) -> tuple[Path, tuple[str, ...]]:
    """The directory `Migrate` names, else the one place the project keeps its migrations.

    Projects that keep them in their package pass the directory to `flask_migrate.upgrade(...)` or
    `flask db -d` rather than to `Migrate`: look where Flask-Migrate projects keep them. Returns the
    directory and, when found by looking, a note for the summary.
    """
    path = Path(named)
    if (path / "env.py").is_file():
        return path, ()
    candidates = _migrations_candidates(app)
    if len(candidates) == 1:
        found = relative(os.fspath(candidates[0]))
        return candidates[0], (f"migrations found in {found} ({os.fspath(path)!r} has no env.py)",)
    relative_to = "" if path.is_absolute() else f", relative to {os.getcwd()}"
    where = f"No Flask-Migrate migrations directory at {os.fspath(path)!r} (from Migrate(directory=...)" \
            f"{relative_to}): it has no env.py"
    if candidates:
        listed = ", ".join(relative(os.fspath(c)) for c in candidates)
        raise UsageError(f"{where}, and the project has several that do: {listed}. Say which one with "
                         f"--directory, e.g. --directory {relative(os.fspath(candidates[0]))}.")
    raise UsageError(f"{where}. Run migcheck from your project's root, pass --directory, or create "
                     "the directory with `flask db init`.")


def _migrations_candidates(app: Flask) -> list[Path]:
    """Where Flask-Migrate projects keep migrations: beside the app (its root path), or one level down."""
    found = [Path(app.root_path) / "migrations",
             *(env.parent for env in Path.cwd().glob("*/migrations/env.py"))]
    unique: dict[str, Path] = {}
    for path in found:
        if (path / "env.py").is_file():
            unique.setdefault(os.path.realpath(path), path)
    return sorted(unique.values())


def _load_revision_files(script: ScriptDirectory, cache: bool) -> list[Script]:
    from migcheck.cache import cache_root  # here: cache.py imports this module
    try:
        # The one loader alembic has; the graph check needs every file, even a duplicate id.
        return revisions.load(script, cache_root() if cache else None)
    except Exception as exc:
        where = user_location(exc) or _unloadable(script)
        at = f" in {where[0]}:{where[1]}" if where else f" in {relative(script.dir)}"
        error = exc.msg if isinstance(exc, SyntaxError) else exc  # its str() repeats file and line
        raise UsageError(
            f"Could not read the revision files{at}: {type(exc).__name__}: {error}. Fix that "
            "revision file (run with --verbose for the full traceback)."
        ) from exc


def _unloadable(script: ScriptDirectory) -> tuple[str, int] | None:
    """The revision file Python cannot compile when the error itself does not say (a NUL byte, a
    binary or UTF-16 file), and the line, or 1."""
    for directory in script._version_locations:
        for path in sorted(Path(directory).glob("*.py")):
            try:
                compile(path.read_bytes(), os.fspath(path), "exec", dont_inherit=True)
            except SyntaxError as exc:
                return relative(os.fspath(path)), exc.lineno or 1
            except (ValueError, OSError):
                return relative(os.fspath(path)), 1
    return None
