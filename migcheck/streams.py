"""The standard streams while migcheck runs the user's code: what it prints is kept aside, and it has
no terminal to read from.

An app prints while it loads and logs while its revisions run, and env.py runs again at every rebuild
of the round trip: mixed into the report, that would bury the findings, and on stdout it would break
a report for machines. So everything written to sys.stdout and sys.stderr during a run is kept and
shown once, after the report, marked as the app's: a count and the first lines, all of them with
--verbose (each distinct line once). migcheck's own warnings go to the real stderr (`warn`).

migcheck runs unattended (CI, git hooks), so the app's stdin has nothing behind it: code that reads
from it (`input()`) gets an error naming its line, and the run ends with exit 2, also when that
code caught the error and went on (as the database guard does).
"""

from __future__ import annotations

import contextlib
import io
import linecache
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, NoReturn

from migcheck.errors import ReadsTerminal
from migcheck.usercode import is_user_code, relative

SHOWN = 5  # lines of the app's output shown without --verbose


class _Kept(io.BytesIO):
    def close(self) -> None:
        """Still readable after the app closed sys.stdout."""


class AppOutput:
    """What the user's code wrote to stdout and stderr, in the order written."""

    def __init__(self) -> None:
        self._bytes = _Kept()
        # One stream for both, so their lines keep their order; a real text stream (encoding,
        # buffer), as code that writes to sys.stdout may expect.
        self.stream = io.TextIOWrapper(self._bytes, encoding="utf-8", errors="backslashreplace",
                                       write_through=True)

    def lines(self) -> list[str]:
        with contextlib.suppress(ValueError):  # closed by the app: what it wrote is still there
            self.stream.flush()
        return self._bytes.getvalue().decode("utf-8", "replace").splitlines()

    def show(self, stream: IO[str], verbose: bool) -> None:
        """Once, after the report: a count and the first lines, or all of them with `verbose`."""
        lines = [line for line in self.lines() if line.strip()]
        distinct = list(dict.fromkeys(lines))
        if not distinct:
            return
        shown = distinct if verbose else distinct[:SHOWN]
        count = f"{len(lines)} line{'s' if len(lines) != 1 else ''}"
        if len(distinct) < len(lines):
            count += f", {len(distinct)} different"
        more = "" if len(shown) == len(distinct) else \
            f"; the first {len(shown)} below, all of them with --verbose"
        print(f"migcheck: the app's own output while migcheck ran it ({count}{more}):", file=stream)
        for line in shown:
            print(f"  | {line}", file=stream)


class _NoTerminal(io.TextIOBase):
    """stdin for the user's code: reading from it is refused (and remembered)."""

    def __init__(self, refused: list[ReadsTerminal]) -> None:
        self._refused = refused

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("migcheck runs the app without a terminal")

    def read(self, size: int | None = -1) -> str:
        self._refuse()

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self._refuse()

    def readlines(self, hint: int | None = -1) -> list[str]:  # type: ignore[override]
        self._refuse()

    def _refuse(self) -> NoReturn:
        frame = sys._getframe(2)
        while frame is not None and not is_user_code(frame.f_code.co_filename):
            frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            how, at = "sys.stdin", ""
        else:
            path, line = frame.f_code.co_filename, frame.f_lineno
            how = "input()" if "input(" in linecache.getline(path, line) else "sys.stdin"
            at = f" at {relative(path)}:{line}"
        refusal = ReadsTerminal(
            f"Your code reads from the terminal ({how}){at}, so migcheck could not check: it runs "
            "the app without a terminal, as CI and git hooks do. Take the value from the app's config "
            "or an environment variable, or read it only when sys.stdin.isatty().")
        self._refused.append(refusal)
        raise refusal


@contextmanager
def app_streams(output: AppOutput) -> Iterator[None]:
    """sys.stdout and sys.stderr into `output`, and a stdin without a terminal, for the block."""
    global _real_stderr
    refused: list[ReadsTerminal] = []
    saved: tuple[Any, Any, Any, Any] = (sys.stdin, sys.stdout, sys.stderr, _real_stderr)
    _real_stderr = sys.stderr
    sys.stdin, sys.stdout, sys.stderr = _NoTerminal(refused), output.stream, output.stream
    try:
        yield
    except Exception:
        if refused:  # what failed is most likely the refusal, caught and wrapped
            raise refused[0] from None
        raise
    finally:
        sys.stdin, sys.stdout, sys.stderr, _real_stderr = saved
    if refused:  # the code caught the error and went on: the run still fails
        raise refused[0]


_real_stderr: IO[str] | None = None


def tell(text: str) -> None:
    """A line of migcheck's own, on the real stderr also while the app's output is kept aside."""
    print(text, file=_real_stderr or sys.stderr)


def warn(message: str) -> None:
    tell(f"migcheck: warning: {message}")
