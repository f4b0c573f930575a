"""Load the user's Flask app the way the `flask` command does, with errors that point at their code."""

from __future__ import annotations

import ast
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from flask import Flask
from flask.cli import NoAppException, ScriptInfo, load_dotenv

from migcheck import compat
from migcheck.errors import Refused, UsageError
from migcheck.usercode import relative, user_location

Factory = Callable[..., Flask]  # a Flask CLI group's create_app


class MigrateCall(NamedTuple):
    """A `Migrate(...)` call found in a module's source (never imported to find it)."""

    module: str  # import name
    path: str  # as the user would type it
    line: int
    app_name: str | None  # the app argument, when it is a plain name

    @property
    def import_path(self) -> str:
        return f"{self.module}:{self.app_name}" if self.app_name else self.module


def load_migrate_app(import_path: str | None, factory: Factory | None = None
                     ) -> tuple[Flask, tuple[str, ...]]:
    """The app, loaded as `load_app` does, with its Flask-Migrate registered.

    Projects laid out as the Flask-Migrate tutorial is register `Migrate(app, db)` in a module of
    their own (manage.py) that the app never imports: without --app, load that module when it is the
    only one; with --app, say to point at it. Returns the app and, when found by looking, a note.
    """
    _load_dotenv()  # FLASK_APP from .flaskenv / .env counts as given
    given = import_path or factory or os.environ.get("FLASK_APP") or None
    try:
        app = load_app(import_path, factory)
    except Refused:
        raise
    except UsageError:
        # What Flask guesses without --app (wsgi.py, app.py, an `app` package whose factory needs
        # an argument) does not load: the one module that registers Migrate may be the app.
        calls = [] if given else find_migrate_calls(None)
        if len(calls) != 1:
            raise
        return _load_migrate_module(calls[0], "The app Flask finds without --app does not load")
    if "migrate" in app.extensions:
        return app, ()
    calls = find_migrate_calls(app)
    if len(calls) == 1 and given is None:
        return _load_migrate_module(calls[0], f"The app {app.import_name!r} does not use Flask-Migrate")
    message = (f"The app {app.import_name!r} does not use Flask-Migrate: no Migrate(app, db) was "
               "registered while it loaded.")
    if len(calls) == 1:
        call = calls[0]
        raise UsageError(f"{message} {call.path}:{call.line} calls Migrate(...) but the app does not "
                         f"import it: point migcheck at that module, e.g. --app {call.import_path}.")
    if calls:
        listed = ", ".join(f"--app {call.import_path} ({call.path}:{call.line})" for call in calls)
        raise UsageError(f"{message} Several modules the app does not import call Migrate(...); point "
                         f"migcheck at the one that sets up this app: {listed}.")
    raise UsageError(f"{message} Call Migrate(app, db) (or migrate.init_app(app, db)) in the app "
                     "factory.")


def _load_migrate_module(call: MigrateCall, why: str) -> tuple[Flask, tuple[str, ...]]:
    """The app of the module that calls Migrate(...), with a note for the summary."""
    try:
        app = load_app(call.import_path)
    except UsageError as exc:
        raise UsageError(f"{why}; {call.path}:{call.line} calls Migrate(...), but loading it failed: "
                         f"{exc}") from exc
    if "migrate" not in app.extensions:
        raise UsageError(f"{why}; {call.path}:{call.line} calls Migrate(...), but not for the app "
                         f"{call.import_path} holds. Point migcheck at your app with --app.")
    return app, (f"app loaded from {call.path}, which registers Migrate (--app {call.import_path})",)


def find_migrate_calls(app: Flask | None) -> list[MigrateCall]:
    """`Migrate(...)` calls in the project's top-level .py files and the app's package, in modules
    that did not run while the app loaded (those had their chance)."""
    root = Path.cwd()
    files = sorted({*root.glob("*.py"), *(Path(app.root_path).glob("*.py") if app else ())})
    loaded = {os.path.realpath(getattr(m, "__file__", None) or "") for m in list(sys.modules.values())}
    calls = []
    for file in files:
        if os.path.realpath(file) in loaded or root not in file.resolve().parents:
            continue
        module = ".".join(file.resolve().relative_to(root.resolve()).with_suffix("").parts)
        calls += [MigrateCall(module.removesuffix(".__init__"), relative(os.fspath(file)), line, name)
                  for line, name in _migrate_calls(file)]
    return calls


def _migrate_calls(file: Path) -> list[tuple[int, str | None]]:
    """(line, app argument name) of each `Migrate(...)` / `flask_migrate.Migrate(...)` call."""
    try:
        tree = ast.parse(file.read_bytes(), filename=os.fspath(file))
    except (SyntaxError, ValueError, OSError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Name) and node.func.id == "Migrate")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "Migrate")):
            first = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg == "app"), None)
            found.append((node.lineno, first.id if isinstance(first, ast.Name) else None))
    return found


def _load_dotenv() -> None:
    """.env and .flaskenv, as the flask command reads them (python-dotenv: UTF-8 only)."""
    try:
        load_dotenv()
    except UnicodeDecodeError as exc:
        raise UsageError(f"Could not read {_undecodable_dotenv()}: it is not UTF-8 ({exc}), and "
                         "python-dotenv, which reads it for the flask command, takes only UTF-8. "
                         "Save it as UTF-8.") from exc


def _undecodable_dotenv() -> str:
    import dotenv

    for name in (".env", ".flaskenv"):
        path = dotenv.find_dotenv(name, usecwd=True)
        try:
            if path:
                Path(path).read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return relative(path)
        except OSError:
            continue
    return ".env or .flaskenv"


def load_app(import_path: str | None, factory: Factory | None = None) -> Flask:
    """Import the app from `--app`, else build it with `factory` (what a `FlaskGroup(create_app=...)`
    knows, which Flask prefers too), else from FLASK_APP (after reading .env / .flaskenv)."""
    os.environ["FLASK_RUN_FROM_CLI"] = "true"  # a module-level app.run() must not start a server
    _load_dotenv()
    import_path = import_path or (None if factory else os.environ.get("FLASK_APP")) or None
    try:
        # A ScriptInfo of our own: calls the factory as the group's would (old Flask passes it
        # `script_info` if it takes one), here, inside the scratch area.
        return ScriptInfo(app_import_path=import_path, create_app=None if import_path else factory,
                          set_debug_flag=False).load_app()
    except Refused:
        raise  # its message names the line already
    except UsageError as exc:  # e.g. a scratch database cannot be created: say where
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
        needs = _factory_arguments(flask_message, import_path)
        if needs is not None:
            return UsageError(needs)
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


# Flask's "could not call it without arguments" / "could not be called with the specified arguments"
_FACTORY = re.compile(
    r"factory ['\"](?P<factory>\w+)(?:\(.*?\))?['\"] in module ['\"](?P<module>[\w.]+)['\"]", re.DOTALL)
_LIKELY_KEYS = ("testing", "test", "development", "dev", "default")


def _factory_arguments(flask_message: str, import_path: str | None) -> str | None:
    """For a factory called without the arguments it needs: which, and an --app line with them."""
    match = _FACTORY.search(flask_message)
    module = sys.modules.get(match["module"]) if match else None
    factory = getattr(module, match["factory"], None) if match else None
    if match is None or not callable(factory):
        return None
    given_args, given_kwargs = _given_arguments(import_path)
    try:
        signature = inspect.signature(factory)
        bound = signature.bind_partial(*given_args, **given_kwargs).arguments
    except (TypeError, ValueError):
        return None
    missing = [p for p in signature.parameters.values()
               if p.default is p.empty and p.name not in bound and p.name != "script_info"
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not missing:
        return None
    likely = {p.name: _likely_value(factory, p.name) for p in missing}
    by_position = not given_args and not given_kwargs and all(p.kind != p.KEYWORD_ONLY for p in missing)
    shown = [repr(a) for a in given_args] + [f"{k}={v!r}" for k, v in given_kwargs.items()]
    for parameter in missing:
        found = likely[parameter.name]
        value = repr(found[0]) if found else "..."
        shown.append(value if by_position else f"{parameter.name}={value}")
    example = f"--app \"{match['module']}:{match['factory']}({', '.join(shown)})\""
    names = ", ".join(p.name for p in missing)
    why = "; ".join(f"{name} is looked up in {found[1]}, which has {', '.join(map(repr, found[2]))}"
                    for name, found in likely.items() if found)
    unknown = [name for name, found in likely.items() if not found]
    return (f"The factory {match['factory']!r} in module {match['module']!r} needs "
            f"{'an argument' if len(missing) == 1 else 'arguments'} that --app does not give: "
            f"{names}. Give {'it' if len(missing) == 1 else 'them'} in --app, e.g. {example}"
            + (f" ({why})" if why else "")
            + (f", with a value for {', '.join(unknown)} in place of ..." if unknown else "") + ".")


def _given_arguments(import_path: str | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The literal arguments in `module:factory(...)`, as Flask passes them."""
    call = (import_path or "").partition(":")[2]
    try:
        node = ast.parse(call.strip(), mode="eval").body
    except SyntaxError:
        return (), {}
    if not isinstance(node, ast.Call):
        return (), {}
    try:
        return (tuple(ast.literal_eval(a) for a in node.args),
                {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg})
    except ValueError:
        return (), {}


def _likely_value(factory: Callable[..., Any], name: str) -> tuple[str, str, list[str]] | None:
    """A value the factory accepts for `name`: a key of the mapping it looks `name` up in
    (`CONFIGS[name]`, `config.get(name)`); with that mapping's name and keys."""
    try:
        tree = ast.parse(inspect.getsource(factory).lstrip())
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        looked_up = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name) and node.slice.id == name:
            looked_up = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "get" and node.args and isinstance(node.args[0], ast.Name)
              and node.args[0].id == name):
            looked_up = node.func.value
        if not isinstance(looked_up, ast.Name):
            continue
        mapping = getattr(factory, "__globals__", {}).get(looked_up.id)
        if isinstance(mapping, Mapping) and mapping and all(isinstance(k, str) for k in mapping):
            keys = list(mapping)
            value = next((k for k in _LIKELY_KEYS if k in keys), keys[0])
            return value, looked_up.id, keys
    return None
