"""The project's files that the revisions read while they run, seen as Python opens them.

A revision can size a column from a data file (`pkgutil.get_data`, `open`, `ConfigParser.read`,
`importlib.resources`), itself or through any project module, also one reached through a package's
`__init__.py`. No reading of the source can find all of those, so the cache (cache.py) keys an
entry on what was actually opened: Python's `open` audit event is raised for every file opened for
reading, from Python or C (`io.open`, `io.open_code`, `os.open`, `FileIO`). Files under the project
(the working directory) count; the installed libraries, compiled bytecode and migcheck's own scratch
and cache directories do not. A Python audit hook cannot be removed: it checks a flag.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from migcheck.usercode import is_user_code

_opened: set[str] | None = None  # while recording: every path opened for reading, as given
_hooked = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or _opened is None:
        return
    path, mode, flags = args
    if isinstance(path, int):
        return  # an open file descriptor: its file was seen when it was opened
    if mode is None:  # os.open: flags
        if isinstance(flags, int) and flags & os.O_WRONLY:
            return
    elif "r" not in mode and "+" not in mode:
        return
    _opened.add(os.path.abspath(os.fsdecode(path)))


@contextmanager
def recording(excluded: Iterable[str]) -> Iterator[set[str]]:
    """The set, filled when the block ends: real paths of the project's files opened for reading in
    it (not under the `excluded` directories)."""
    global _opened, _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    found: set[str] = set()
    _opened = set()
    try:
        yield found
    finally:
        opened, _opened = _opened, None
        found.update(_project_files(opened, excluded))


def _project_files(paths: Iterable[str], excluded: Iterable[str]) -> set[str]:
    project = os.path.realpath(os.getcwd()) + os.sep
    skipped = tuple(os.path.realpath(directory) + os.sep for directory in excluded)
    found = set()
    for path in paths:
        real = os.path.realpath(path)
        if (real.startswith(project) and not real.startswith(skipped) and is_user_code(real)
                and "__pycache__" not in real.split(os.sep) and os.path.isfile(real)):
            found.add(real)
    return found
