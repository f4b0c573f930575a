"""The `migcheck` command. Flask and SQLAlchemy are imported only once a run starts."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from migcheck import __version__
from migcheck.checks import CHECKS
from migcheck.errors import UsageError

EXIT_CODES = """\
exit codes:
  0  no problems (warnings and info do not fail the run)
  1  problems found
  2  migcheck could not check: bad usage, the app does not load, or the revision
     history cannot be read (broken revision file, cycle, missing revision)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migcheck",
        description="Check that a Flask app's Flask-Migrate migrations match its Flask-SQLAlchemy "
                    "models, on a scratch database (never the app's own).",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--app", metavar="IMPORT",
                        help="the app, as `flask --app` takes it: 'pkg', 'pkg:app', "
                             "\"pkg:create_app('testing')\" (default: FLASK_APP, .flaskenv, .env, "
                             "then wsgi.py / app.py)")
    parser.add_argument("--directory", metavar="DIR",
                        help="the migrations directory (default: what the app's Migrate says)")
    parser.add_argument("--select", metavar="CHECK", action="append", default=[],
                        help=f"run only these checks (repeat or comma-separate): {', '.join(CHECKS)}")
    parser.add_argument("--skip", metavar="CHECK", action="append", default=[],
                        help="do not run these checks")
    parser.add_argument("--no-server-defaults", action="store_true",
                        help="do not compare server defaults in the drift check")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the report (auto: on a terminal, honouring NO_COLOR and "
                             "FORCE_COLOR)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show full tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"migcheck {__version__}")
    return parser


def _check_names(values: list[str], flag: str, parser: argparse.ArgumentParser) -> set[str]:
    names = {name.strip() for value in values for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(CHECKS))
    if unknown:
        parser.error(f"{flag}: unknown check {', '.join(unknown)} (choose from {', '.join(CHECKS)})")
    return names


def use_color(choice: str, stream: Any) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds, so the scratch area is removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    selected = _check_names(args.select, "--select", parser) or set(CHECKS)
    checks = tuple(c for c in CHECKS if c in selected - _check_names(args.skip, "--skip", parser))
    if not checks:
        parser.error("--select/--skip leave no check to run")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from migcheck.project import Options
        from migcheck.report import text
        from migcheck.runner import run

        result = run(args.app, args.directory, checks,
                     Options(compare_server_default=not args.no_server_defaults))
    except UsageError as exc:
        _explain(str(exc), exc.__cause__ or exc, args.verbose)
        return UsageError.exit_code
    except KeyboardInterrupt:
        print("migcheck: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in migcheck or an error it does not know yet
        _explain(f"unexpected {type(exc).__name__}: {exc}. Please report this with the output "
                 "of --verbose.", exc, args.verbose)
        return 2
    print(text.render(result, use_color(args.color, sys.stdout)))
    from migcheck.findings import exit_code

    return exit_code(result.findings)


def _explain(message: str, exc: BaseException, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    print(f"migcheck: error: {message}", file=sys.stderr)
