"""What the checks work on: the loaded app, its Flask-Migrate setup and the scratch databases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionMap
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from migcheck import compat
from migcheck.appload import relative, user_location
from migcheck.errors import UsageError
from migcheck.scratch import Scratch


class Options(NamedTuple):
    compare_server_default: bool = True
    db_url: str | None = None  # a PostgreSQL / MySQL server for the scratch databases (else SQLite)
    sources: tuple[str, ...] = ()  # more directories the imports check searches for models
    cache: bool = True  # resume from the migrated database of an earlier run (see cache.py)


class Project(NamedTuple):
    app: Flask
    db: SQLAlchemy
    directory: Path
    config: Config
    script: ScriptDirectory
    scripts: list[Script]  # every revision file, duplicates included, in directory order
    scratch: Scratch
    options: Options

    @property
    def binds(self) -> list[str | None]:
        return list(self.scratch.configured)

    @property
    def migrate_args(self) -> dict[str, Any]:
        """The keyword arguments given to `Migrate(...)`; env.py passes them to configure()."""
        return dict(self.app.extensions["migrate"].configure_args)


def open_project(app: Flask, scratch: Scratch, directory: str | None, options: Options) -> Project:
    """Find the app's Flask-Migrate setup; call inside an app context."""
    migrate = app.extensions.get("migrate")
    if migrate is None:
        raise UsageError(
            f"The app {app.import_name!r} does not use Flask-Migrate: no Migrate(app, db) was "
            "registered while it loaded. Call Migrate(app, db) (or migrate.init_app(app, db)) "
            "in the app factory."
        )
    path = Path(directory or migrate.directory)
    if not (path / "env.py").is_file():
        where = "--directory" if directory else "Migrate(directory=...)"
        relative_to = "" if path.is_absolute() else f", relative to {os.getcwd()}"
        raise UsageError(
            f"No Flask-Migrate migrations directory at {os.fspath(path)!r} (from {where}"
            f"{relative_to}): it has no env.py. Run migcheck from your project's root, "
            "pass --directory, or create the directory with `flask db init`."
        )
    config = migrate.migrate.get_config(os.fspath(path))
    script = ScriptDirectory.from_config(config)
    scripts = _load_revision_files(script)
    # Alembic would import every revision file again to build its map; hand it the ones we have.
    script.revision_map = RevisionMap(lambda: scripts)
    return Project(app=app, db=migrate.db, directory=path, config=config, script=script,
                   scripts=scripts, scratch=scratch, options=options)


def _load_revision_files(script: ScriptDirectory) -> list[Script]:
    try:
        # The one loader alembic has; the graph check needs every file, even a duplicate id.
        return compat.load_revisions(script)
    except Exception as exc:
        where = user_location(exc)
        at = f" in {where[0]}:{where[1]}" if where else f" in {relative(script.dir)}"
        error = exc.msg if isinstance(exc, SyntaxError) else exc  # its str() repeats file and line
        raise UsageError(
            f"Could not read the revision files{at}: {type(exc).__name__}: {error}. Fix that "
            "revision file (run with --verbose for the full traceback)."
        ) from exc
