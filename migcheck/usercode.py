"""Where the user's code is: which files are theirs, and paths as they would type them.

Shared by every layer (the guard names the user's line that tried to connect; findings point at
the user's files), so it depends on nothing of migcheck's.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import traceback

# Frames in these are not the user's code: the standard library, installed packages, migcheck.
_LIBRARY_DIRS = tuple(
    os.path.realpath(path) + os.sep
    for path in {*(sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")),
                 os.path.dirname(__file__)}
    if path
)
_INSTALLED = ("site-packages", "dist-packages")  # also another environment's installed packages
_MIGCHECK_DIR = os.path.realpath(os.path.dirname(__file__)) + os.sep


def user_location(exc: BaseException) -> tuple[str, int] | None:
    """The innermost file:line of the user's own code in a traceback (or a SyntaxError's)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return relative(exc.filename), exc.lineno
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if is_user_code(frame.f_code.co_filename):
            found = (relative(frame.f_code.co_filename), lineno)
    return found


def innermost_code(exc: BaseException) -> tuple[tuple[str, int] | None, bool]:
    """The innermost file:line in a traceback that is not a library's (the user's code or
    migcheck's, as `migcheck/...`), and whether it is migcheck's."""
    found, ours = None, False
    parent = os.path.dirname(_MIGCHECK_DIR.rstrip(os.sep))
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        path = frame.f_code.co_filename
        if os.path.realpath(path).startswith(_MIGCHECK_DIR):
            found, ours = (os.path.relpath(os.path.realpath(path), parent), lineno), True
        elif is_user_code(path):
            found, ours = (relative(path), lineno), False
    return found, ours


@functools.lru_cache(maxsize=4096)
def is_user_code(path: str) -> bool:
    """A source file of the user's (not the standard library, an installed package or migcheck)."""
    if path.startswith("<"):
        return False
    real = os.path.realpath(path)
    return not real.startswith(_LIBRARY_DIRS) and not any(part in _INSTALLED for part in real.split(os.sep))


def calling_line(paths: tuple[str, str]) -> int | None:
    """The line of a file (its path as imported, and its real path) that made the call being run: its
    innermost frame on the stack."""
    for same in (lambda name: name in paths, lambda name: os.path.realpath(name) == paths[1]):
        frame = sys._getframe(2)
        while frame is not None:
            if same(frame.f_code.co_filename):
                return frame.f_lineno
            frame = frame.f_back  # type: ignore[assignment]
    return None


def relative(path: str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
