"""Load the user's Flask app the way the `flask` command does, with errors that point at their code."""

from __future__ import annotations

import os
import sysconfig
import traceback

from flask import Flask
from flask.cli import NoAppException, ScriptInfo, load_dotenv

from migcheck import compat
from migcheck.errors import UsageError

# Frames in these are not the user's code: the standard library, installed packages, migcheck.
_LIBRARY_DIRS = tuple(
    os.path.realpath(path)
    for path in {sysconfig.get_path("stdlib"), sysconfig.get_path("purelib"),
                 sysconfig.get_path("platlib"), os.path.dirname(__file__)}
)


def load_app(import_path: str | None) -> Flask:
    """Import the app from `--app`, else FLASK_APP (after reading .env / .flaskenv)."""
    os.environ["FLASK_RUN_FROM_CLI"] = "true"  # a module-level app.run() must not start a server
    load_dotenv()
    import_path = import_path or os.environ.get("FLASK_APP") or None
    try:
        return ScriptInfo(app_import_path=import_path, set_debug_flag=False).load_app()
    except UsageError as exc:  # e.g. the app connects to its configured database: say where
        where = user_location(exc)
        if where is None:
            raise
        raise UsageError(f"{exc} It happens at {where[0]}:{where[1]}.") from exc
    except NoAppException as exc:
        raise _load_error(import_path, exc.__context__ or exc, str(exc)) from exc
    except Exception as exc:
        raise _load_error(import_path, exc, None) from exc


def _load_error(import_path: str | None, exc: BaseException, flask_message: str | None) -> UsageError:
    where = user_location(exc)
    what = import_path or "the app"
    if where is None and flask_message is not None:
        # Not found (no module, no attribute, nothing to auto-detect): Flask's message says it.
        message = compat.flask_cli_message(flask_message.split("\n\n")[0])
        message = message.replace("'flask --app'", "'migcheck --app'")
        if "--app" not in message:
            message += (" Point migcheck at your app with --app, e.g. --app 'yourpkg:create_app()', "
                        "or set FLASK_APP.")
        return UsageError(message)
    error = f"{type(exc).__name__}: {exc}".strip()
    at = f" at {where[0]}:{where[1]}" if where else ""
    return UsageError(f"Could not load {what!r}: {error}{at}. Fix the error in your code "
                      "(run with --verbose for the full traceback).")


def user_location(exc: BaseException) -> tuple[str, int] | None:
    """The innermost file:line of the user's own code in a traceback (or a SyntaxError's)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return relative(exc.filename), exc.lineno
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        path = frame.f_code.co_filename
        if not path.startswith("<") and not os.path.realpath(path).startswith(_LIBRARY_DIRS):
            found = (relative(path), lineno)
    return found


def relative(path: str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
