"""The scratch area: the only databases migcheck ever connects to.

Two mechanisms keep the promise. Every `SQLAlchemy.init_app` sees its database URLs replaced by
scratch URLs before it creates an engine (so a `postgresql://` URL needs no driver and an app factory
that connects or calls `db.create_all()` lands in the scratch database). And a `do_connect` listener
on every Engine refuses any connection that is not to a scratch database, whoever opens it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy

from migcheck.errors import UsageError


class UnsafeConnection(UsageError):
    """Something tried to connect to a database that is not one of migcheck's scratch databases."""


class Scratch:
    """Per-bind scratch SQLite files in a private temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.configured: dict[str | None, str] = {}  # bind key -> the URL the app is configured with

    def url_for(self, bind_key: str | None) -> str:
        return f"sqlite:///{self.path_for(bind_key)}"

    def path_for(self, bind_key: str | None) -> Path:
        name = "default" if bind_key is None else "bind-" + re.sub(r"[^\w.-]", "_", bind_key)
        return self.root / f"{name}.sqlite"

    def bind_for(self, engine: sa.engine.Engine) -> str | None:
        """Which bind a scratch engine belongs to (env.py hands us engines, not bind keys)."""
        for key in self.configured:
            if str(engine.url) == self.url_for(key):
                return key
        return None

    def owns(self, dialect: sa.engine.Dialect, cargs: Any, cparams: dict[str, Any]) -> bool:
        if dialect.name != "sqlite":
            return False
        database = cargs[0] if cargs else cparams.get("database", "")
        if database in ("", ":memory:"):
            return True  # a private in-memory database touches nothing
        path = os.path.realpath(str(database).removeprefix("file:").split("?")[0])
        return path.startswith(os.path.realpath(self.root) + os.sep)

    def redirect(self, app_config: dict[str, Any], db: SQLAlchemy) -> None:
        """Point an app's Flask-SQLAlchemy config at scratch databases, before engines exist."""
        uri = app_config.get("SQLALCHEMY_DATABASE_URI")
        if uri is not None:
            self.configured[None] = _safe(uri)
            app_config["SQLALCHEMY_DATABASE_URI"] = self.url_for(None)
        binds = {}
        for key, value in (app_config.get("SQLALCHEMY_BINDS") or {}).items():
            self.configured[key] = _safe(value["url"] if isinstance(value, dict) else value)
            binds[key] = self.url_for(key)
        app_config["SQLALCHEMY_BINDS"] = binds
        # Options meant for the real server (connect_args, pool sizes) do not fit a scratch engine.
        app_config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
        app_config["SQLALCHEMY_ECHO"] = False
        db._engine_options = {}

    def reset(self, engines: list[sa.engine.Engine]) -> list[str | None]:
        """Empty every scratch database; returns the binds that had tables in them."""
        had_tables = []
        for engine in engines:
            engine.dispose()
        for key in self.configured:
            path = self.path_for(key)
            if path.exists():
                engine = sa.create_engine(self.url_for(key))
                if sa.inspect(engine).get_table_names():
                    had_tables.append(key)
                engine.dispose()
                path.unlink()
        return had_tables


def _safe(url: Any) -> str:
    """A configured URL fit to print: without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


@contextmanager
def scratch_area() -> Iterator[Scratch]:
    """A Scratch for the duration of the block; removed at exit, also on errors and Ctrl-C."""
    scratch = Scratch(Path(tempfile.mkdtemp(prefix="migcheck-")))

    def refuse_foreign(dialect: sa.engine.Dialect, conn_rec: Any, cargs: Any,
                       cparams: dict[str, Any]) -> None:
        if not scratch.owns(dialect, cargs, cparams):
            target = cparams.get("dbname") or cparams.get("database") or (cargs[0] if cargs else "")
            raise UnsafeConnection(
                f"Refused a connection to the {dialect.name} database {str(target)!r}: migcheck "
                "only connects to its own scratch databases. Something in the app (or its env.py) "
                "connects to the configured database directly instead of through Flask-SQLAlchemy; "
                "make that connection lazy or read the URL from db.engine."
            )

    original_init_app = SQLAlchemy.init_app

    def init_app(self: SQLAlchemy, app: Any) -> None:
        scratch.redirect(app.config, self)
        original_init_app(self, app)

    sa.event.listen(sa.engine.Engine, "do_connect", refuse_foreign)
    SQLAlchemy.init_app = init_app  # type: ignore[method-assign]
    try:
        yield scratch
    finally:
        SQLAlchemy.init_app = original_init_app  # type: ignore[method-assign]
        sa.event.remove(sa.engine.Engine, "do_connect", refuse_foreign)
        shutil.rmtree(scratch.root, ignore_errors=True)
