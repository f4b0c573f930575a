"""The `migcheck` command. Flask and SQLAlchemy are imported only once a run starts."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from migcheck import __version__
from migcheck.checks import CHECKS, TARGETS
from migcheck.errors import InternalError, Terminated, UsageError
from migcheck.report import FORMATS

if TYPE_CHECKING:
    from migcheck.findings import Run
    from migcheck.project.appload import Factory
    from migcheck.streams import AppOutput
    from migcheck.suppress import Ignore, Key

EXIT_CODES = """\
exit codes:
  0  no problems (warnings and info do not fail the run)
  1  problems found
  2  migcheck could not check: bad usage, the app does not load, the revision
     history cannot be read (broken revision file, cycle, missing revision),
     it does not start from an empty database and no --start-from says how it
     does, the upgrade the selected checks need fails (or needs --db-url on
     SQLite), the disk or memory ran out or the server connection was lost, or a
     connection to a database other than the scratch ones was refused

Options can also be set in pyproject.toml under [tool.migcheck] (the option names
with underscores: app, directory, select, skip, format, ignore, baseline, ...);
options given here override them.
"""


def _parser(prog: str = "migcheck") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
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
    parser.add_argument("--source", metavar="DIR", action="append", default=[],
                        help="also search DIR for models the app does not import (repeatable; the "
                             "app's package is always searched)")
    parser.add_argument("--db-url", metavar="URL",
                        help="run the checks in scratch databases that migcheck creates (and drops) "
                             "on this PostgreSQL or MySQL/MariaDB server, e.g. "
                             "postgresql://postgres@localhost:5432/ (default: MIGCHECK_DATABASE_URL, then "
                             "db_url in [tool.migcheck]; else SQLite)")
    parser.add_argument("--no-server-defaults", action="store_true",
                        help="do not compare server defaults in the drift check")
    parser.add_argument("--no-cache", action="store_true",
                        help="start from an empty database instead of the migrated one an earlier run "
                             "kept (in MIGCHECK_CACHE_DIR, default ~/.cache/migcheck)")
    parser.add_argument("--clear-cache", action="store_true",
                        help="remove the cache and exit: the local one and, with --db-url (or "
                             "MIGCHECK_DATABASE_URL, db_url in [tool.migcheck]), migcheck's cache "
                             "databases on that server")
    parser.add_argument("--reupgrade", action="store_true",
                        help="in the round trip, upgrade every revision again after its downgrade (on "
                             "SQLite the default rolls the checked downgrade back instead, which cannot "
                             "see state outside the database, e.g. a module that remembers it ran)")
    parser.add_argument("--since", metavar="REVISION",
                        help="the revisions after REVISION are the ones not deployed yet, which the "
                             "deploy-safety and data checks look at (`base`: every revision; default: "
                             "the revision files new relative to the git base branch)")
    parser.add_argument("--git-base", metavar="REF",
                        help="the git branch or commit the undeployed revisions are new relative to "
                             "(default: the pull request's base in GitHub Actions, else the branch's "
                             "upstream, origin/HEAD, main, master)")
    parser.add_argument("--target", choices=TARGETS,
                        help="the database type the project deploys on, which decides the safety "
                             "check's rules (default: the --db-url server's type, else the dialect "
                             "of the database URL the app is configured with)")
    parser.add_argument("--start-from", metavar="PATH",
                        help="the schema the history starts from, for migrations that never ran on an "
                             "empty database: a SQL file ({dialect} in PATH becomes sqlite, postgresql or "
                             "mysql), or module:function, called with a SQLAlchemy Connection to the "
                             "scratch database; if it stamps alembic_version, the walk starts after that "
                             "revision")
    parser.add_argument("--color", choices=("auto", "always", "never"),
                        help="colour the report (auto, the default: on a terminal, honouring NO_COLOR "
                             "and FORCE_COLOR)")
    parser.add_argument("--format", choices=FORMATS,
                        help="the report format (default: text); json, junit and sarif are for "
                             "machines, github prints workflow annotations")
    parser.add_argument("--output", metavar="FILE",
                        help="write the report to FILE; the text report still goes to stdout")
    parser.add_argument("--ignore", metavar="RULE[:OBJECT]", action="append", default=[],
                        help="leave out findings of RULE (a rule id or glob such as 'drift-*'), only "
                             "those about OBJECT (a table, table.column or revision id) if given; "
                             "repeatable")
    parser.add_argument("--baseline", metavar="FILE",
                        help="report only findings that are not in this baseline file")
    parser.add_argument("--write-baseline", metavar="FILE",
                        help="record today's findings in FILE, for --baseline FILE")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show full tracebacks for errors, and the suppressed findings with "
                             "the reason given for each")
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
    raise Terminated(128 + signum)  # unwinds, so the scratch area is removed


def console() -> int:
    """The `migcheck` command and `python -m migcheck`: main() in a process of its own, tuned for
    it. A run keeps a few hundred thousand objects alive to its end (the libraries, the app,
    SQLAlchemy's metadata, Alembic's revision modules). Importing them makes little garbage, yet
    Python's collector scans them again and again (80 of 700 ms of a warm run at N=200): it stays
    off until they are loaded, then they are frozen out of its way. After that, at Python's default
    thresholds it would scan what the walk builds again and again (at N=1000, 27 of 117 s of CPU;
    15 s at these thresholds, for 8% more peak memory). At exit it would scan everything once more
    only to free memory the OS takes back anyway (1.2 s of a 10 s run at N=200). Not done in
    main(), which also runs inside other processes (tests, `flask migcheck`)."""
    gc.disable()
    try:
        return main(loaded=_collect_from_now_on)
    finally:
        gc.freeze()  # left to the OS: Python's exit no longer scans what the run built


def _collect_from_now_on() -> None:
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    gc.enable()


def main(argv: Sequence[str] | None = None, prog: str = "migcheck", factory: Factory | None = None,
         loaded: Callable[[], None] = lambda: None) -> int:
    """`prog`: the command as the user typed it, for usage and errors (`flask migcheck`); `factory`:
    the app factory of the Flask CLI group migcheck runs in, when it knows one and no --app;
    `loaded`: see runner.run."""
    started = time.perf_counter()  # the reported time includes importing the app and the libraries
    _safe_output()
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        origins = _apply_config(args)
    except UsageError as exc:
        _explain(str(exc), exc, args.verbose)
        return UsageError.exit_code
    if args.clear_cache:
        return _clear_cache(args, origins.get("db_url", "--db-url"))
    selected = _check_names(args.select, "--select", parser) or set(CHECKS)
    checks = tuple(c for c in CHECKS if c in selected - _check_names(args.skip, "--skip", parser))
    if not checks:
        parser.error("--select/--skip leave no check to run")
    for directory in args.source:
        if not os.path.isdir(directory):
            parser.error(f"--source {directory}: no such directory")
    ignores = _ignores(args.ignore, parser)
    terminate = signal.signal(signal.SIGTERM, _terminate)
    _install_hooks(args.verbose)
    from migcheck.streams import AppOutput

    output = AppOutput()
    try:
        return _check(args, checks, origins, ignores, started, output, factory, loaded)
    finally:  # however the run ended: the app's output may say why
        signal.signal(signal.SIGTERM, terminate)
        with contextlib.suppress(OSError, ValueError):  # stdout closed by its reader
            sys.stdout.flush()
        output.show(sys.stderr, args.verbose)


def _check(args: argparse.Namespace, checks: tuple[str, ...], origins: dict[str, str],
           ignores: list[Ignore], started: float, output: AppOutput, factory: Factory | None,
           loaded: Callable[[], None]) -> int:
    """The run, with what the app prints kept in `output`, then the report and the exit code."""
    try:
        from migcheck import progress, streams, suppress
        from migcheck.project import Options
        from migcheck.runner import run

        baseline = suppress.read_baseline(Path(args.baseline)) if args.baseline else None
        machine_report = (args.format or "text") != "text" and not args.output
        with progress.status_line(sys.stderr, progress.wanted(sys.stderr, machine_report),
                                  started) as step, streams.app_streams(output):
            result = run(args.app, args.directory, checks,
                         Options(compare_server_default=not args.no_server_defaults,
                                 db_url=args.db_url or os.environ.get("MIGCHECK_DATABASE_URL") or None,
                                 sources=tuple(args.source), cache=not args.no_cache,
                                 reupgrade=args.reupgrade,
                                 since=args.since, git_base=args.git_base,
                                 target=args.target, start_from=args.start_from,
                                 origins=origins), step, factory, loaded)
        result = result._replace(seconds=time.perf_counter() - started)
    except UsageError as exc:
        _explain(str(exc), exc.__cause__ or exc, args.verbose)
        return UsageError.exit_code
    except KeyboardInterrupt:
        print("migcheck: interrupted", file=sys.stderr)
        return 130
    except InternalError as exc:  # raised in migcheck's code while env.py ran
        return _internal_error(exc.__cause__ or exc, args.verbose)
    except Exception as exc:  # a bug in migcheck, or an error of the project's it does not know yet
        return _internal_error(exc, args.verbose)
    try:
        code = _report(result, args, ignores, baseline)
    except UsageError as exc:
        _explain(str(exc), exc, args.verbose)
        return UsageError.exit_code
    return UsageError.exit_code if _late_refusals() else code


def _clear_cache(args: argparse.Namespace, origin: str) -> int:
    """--clear-cache: say what was removed; exit 2 if the server cannot be reached."""
    from migcheck import cache
    from migcheck.databases.servers import Server, parse_url

    db_url = args.db_url or os.environ.get("MIGCHECK_DATABASE_URL") or None
    try:
        server = Server(parse_url(db_url, origin), origin) if db_url else None
        removed = cache.clear(server)
    except UsageError as exc:
        _explain(str(exc), exc, args.verbose)
        return UsageError.exit_code
    except OSError as exc:
        _explain(f"could not remove the cache: {exc}", exc, args.verbose)
        return UsageError.exit_code
    print("\n".join(f"migcheck: removed {what}" for what in removed) or "migcheck: no cache to remove")
    return 0


def _late_refusals() -> bool:
    """Whether connections were refused after the checks (the app's timers, threads): each told."""
    from migcheck.databases import guard

    refused = guard.late_refusals()
    for message in refused:
        print(f"migcheck: error: {message}", file=sys.stderr)
    return bool(refused)


_hooked: list[int | None] = [None]  # the process main() installed its hooks in
_verbose = [False]  # the latest run's --verbose: Python's tracebacks of late refusals shown


def _install_hooks(verbose: bool) -> None:
    """Once per process, however often main() runs in it (tests, `flask migcheck` called again):
    the exit hook, registered before the app is imported so that it runs after every atexit hook
    the app registers, and the hooks that quiet refusals (see _quiet_refusals)."""
    _verbose[0] = verbose
    if _hooked[0] == os.getpid():
        return
    _hooked[0] = os.getpid()
    atexit.register(_refused_at_exit, os.getpid())
    _quiet_refusals()


def _quiet_refusals() -> None:
    """A refusal that an atexit hook or a thread of the app let through is told once, by migcheck,
    in its own words: Python's traceback of it is left out (shown with --verbose)."""
    from migcheck.errors import UnsafeConnection

    unraisable, in_thread = sys.unraisablehook, threading.excepthook

    def on_unraisable(info: Any) -> None:
        if _verbose[0] or not isinstance(info.exc_value, UnsafeConnection):
            unraisable(info)

    def on_thread_error(info: Any) -> None:
        if _verbose[0] or not isinstance(info.exc_value, UnsafeConnection):
            in_thread(info)

    sys.unraisablehook, threading.excepthook = on_unraisable, on_thread_error


def _refused_at_exit(pid: int) -> None:
    """The last word: a connection refused in an atexit hook of the app (or a thread that outlived
    main()) fails the run, which has already reported, with exit 2."""
    if os.getpid() == pid and "migcheck.databases.guard" in sys.modules and _late_refusals():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(UsageError.exit_code)  # the only way to change the exit status this late


def _safe_output() -> None:
    """From here on, no password and (in GitHub Actions) no workflow command reaches the output,
    whoever writes it: migcheck, a library or the app (see sanitize.py)."""
    from migcheck.sanitize import SafeStream

    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout, in_actions)
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr, in_actions)


def _apply_config(args: argparse.Namespace) -> dict[str, str]:
    """Fill in the options not given on the command line from [tool.migcheck], then the database
    URL from the environment; returns where each value that is not a flag's came from."""
    from migcheck import config

    found = config.load()
    origins = {}
    from_environment = os.environ.get("MIGCHECK_DATABASE_URL")
    for key, value in found.values.items():
        if key == "db_url" and from_environment:
            continue  # the environment is more specific than the project's file
        if getattr(args, key) in (None, [], False):
            setattr(args, key, value)
            origins[key] = f"{key} in [tool.migcheck] of {found.path}"
    if not args.db_url and from_environment:
        origins["db_url"] = "MIGCHECK_DATABASE_URL"
    return origins


def _ignores(patterns: list[str], parser: argparse.ArgumentParser) -> list[Ignore]:
    from migcheck.suppress import parse_ignore

    try:
        return [parse_ignore(pattern) for pattern in patterns]
    except ValueError as exc:
        parser.error(f"--ignore: {exc}")


def _report(result: Run, args: argparse.Namespace, ignores: list[Ignore],
            baseline: Counter[Key] | None) -> int:
    """Suppression (per object), grouping (one finding per revision and rule), then the report in
    the chosen format, then the exit code."""
    from migcheck import grouping
    from migcheck.findings import exit_code

    result = grouping.group(_suppress(result, args, ignores, baseline))
    try:
        _print(result, args)
    except BrokenPipeError:  # the reader left early (`migcheck | head`): the verdict still stands
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return exit_code(result.findings)


def _suppress(result: Run, args: argparse.Namespace, ignores: list[Ignore],
              baseline: Counter[Key] | None) -> Run:
    from migcheck import suppress

    result = suppress.apply(result, ignores)
    baseline_path = Path(args.baseline) if args.baseline else None
    if args.write_baseline:
        if any(f.severity == "fatal" for f in result.findings):
            print(f"migcheck: not writing {args.write_baseline}: the checks did not complete",
                  file=sys.stderr)
        else:  # record what is left, then report as a run with that baseline would
            baseline_path = Path(args.write_baseline)
            baseline = suppress.write_baseline(baseline_path, result.findings)
            print(f"migcheck: recorded {len(result.findings)} findings in {baseline_path}",
                  file=sys.stderr)
    if baseline is None or baseline_path is None:
        return result
    return suppress.apply(result, baseline=baseline, baseline_dir=baseline_path.resolve().parent)


def _print(result: Run, args: argparse.Namespace) -> None:
    """The report to --output and/or stdout; inside GitHub Actions, annotations and the summary."""
    from migcheck.report import github
    from migcheck.sanitize import mask_passwords

    form = args.format or "text"
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if args.output:
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # as pytest's --junitxml does
            Path(args.output).write_text(_render(form, result, False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Could not write the report to {args.output!r}: {exc}.") from exc
        form = "text"  # stdout keeps the readable report
    if form == "text" and in_actions and result.findings:
        getattr(sys.stdout, "commands", sys.stdout.write)(github.render(result) + "\n")  # ours: as they are
        if github.hidden(result):
            print(f"migcheck: GitHub shows only {github.LIMIT} error and {github.LIMIT} warning "
                  "annotations per step; every finding is in the report below and in the job summary")
    report = _render(form, result, use_color(args.color or "auto", sys.stdout), args.verbose)
    if form == "github":
        getattr(sys.stdout, "commands", sys.stdout.write)(report + "\n")
    else:
        print(report)
    if in_actions and os.environ.get("GITHUB_STEP_SUMMARY"):
        try:
            with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
                summary.write(mask_passwords(github.summary(result)))
        except OSError as exc:
            print(f"migcheck: could not write the job summary: {exc}", file=sys.stderr)


def _render(form: str, result: Run, color: bool, verbose: bool = False) -> str:
    from migcheck.report import text
    from migcheck.sanitize import mask_passwords

    if form == "text":
        return mask_passwords(text.render(result, color, verbose))
    module = importlib.import_module(f"migcheck.report.{form}")
    return mask_passwords(str(module.render(result)))


def _internal_error(exc: BaseException, verbose: bool) -> int:
    """An exception migcheck did not expect. Raised in migcheck's own code (the innermost frame
    that is not a library's is migcheck's), it is migcheck's bug, and says so; else it names the
    line of the project's code that raised it."""
    from migcheck.usercode import innermost_code

    where, ours = innermost_code(exc)
    error = f"{type(exc).__name__}: {str(exc).strip()}".rstrip(": ")  # drivers end messages with \n
    if ours or where is None:
        at = f" ({where[0]}:{where[1]})" if where else ""
        _explain(f"internal error in migcheck{at}: {error}. This is a bug in migcheck, not in your "
                 "project: please report it, with the output of --verbose.", exc, verbose)
    else:
        _explain(f"{where[0]}:{where[1]}: {error} (raised in your project's code while migcheck ran "
                 "it; run with --verbose for the traceback).", exc, verbose)
    return 2


def _explain(message: str, exc: BaseException, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    print(f"migcheck: error: {message}", file=sys.stderr)
