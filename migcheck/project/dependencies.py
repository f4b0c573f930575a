"""What a revision file runs besides itself: the project's modules it imports, found without running it.

The cache (cache.py) keys each revision on these files' content, because a revision that imports the
app's models or a helper module of the project behaves differently when that code changes. The
import statements are read from the source (anywhere in the file, also inside `upgrade()`, where
they run only when the revision does) and followed through the project's own modules, transitively.
The standard library and installed packages are not followed: the libraries that decide how a
migration runs are keyed by version.

What no file content can key is what a revision reads while it runs: the app's configuration
(`current_app`), the environment, other files, modules named at run time. A revision file that
mentions any of these, or imports a project module that does (transitively, but not through a
package's `__init__.py`: that is the app's glue, whose factory and config read the environment when
the app loads, not when a revision runs), is `opaque`, and the cache does not keep it. The files a
revision actually opens while it runs, through any module, are seen by reads.py and key the entry.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from migcheck import kept
from migcheck.pyfile import read_source_leniently
from migcheck.usercode import is_user_code

_FORMAT = 1  # of the kept scans
# Names through which a revision reads state that is not code.
_OPAQUE_NAMES = frozenset({
    "current_app", "environ", "getenv", "open", "read_text", "read_bytes", "import_module",
    "__import__", "exec", "eval", "load_source", "spec_from_file_location",
})
_OPAQUE_WORDS = re.compile(r"\b(?:" + "|".join(sorted(_OPAQUE_NAMES)) + r")\b")


class Scan(NamedTuple):
    imports: tuple[str, ...]  # absolute names of the modules the file may import, parents included
    opaque: tuple[int, str] | None  # the line and name of its first way to read state that is not code


class Reads(NamedTuple):
    """Where a file (or a project module it imports) reads state that is not code."""

    path: str
    line: int
    name: str  # e.g. `current_app`, `environ`


class Dependencies(NamedTuple):
    files: frozenset[str]  # the project's source files the file imports, transitively (real paths)
    opaque: Reads | None


def find_dependencies(paths: Iterable[str], store: Path | None = None) -> dict[str, Dependencies]:
    """For each file (a revision file or env.py): the project files it imports, and whether it is
    opaque. One pass shares what is found between files that import the same modules. `store`:
    where the scans of files are kept between runs, by content (a warm run parses no file)."""
    origins: dict[str, tuple[str | None, list[str] | None]] = {}
    scans: dict[tuple[str, str | None], Scan] = {}
    known = _known_scans(store) if store is not None else {}
    used: dict[str, Scan] = {}

    def scan(path: str, package: str | None) -> Scan:
        if (path, package) not in scans:
            try:
                with open(path, "rb") as file:
                    key: str | None = f"{hashlib.sha256(file.read()).hexdigest()} {package or ''}"
            except OSError:
                key = None
            scans[path, package] = known[key] if key in known else _scan(path, package)
            if key is not None:
                used[key] = scans[path, package]
        return scans[path, package]

    def closure(path: str) -> Dependencies:
        found: set[str] = set()
        counted: set[str] = set()  # files whose reads count: reached not only through an __init__
        opaque: Reads | None = None
        # (file, its package, whether its reads count: not past a package's __init__.py)
        pending: list[tuple[str, str | None, bool]] = [(path, None, True)]
        while pending:
            file, package, counts = pending.pop()
            counts = counts and os.path.basename(file) != "__init__.py"
            scanned = scan(file, package)
            if opaque is None and counts and scanned.opaque:
                opaque = Reads(file, *scanned.opaque)
            for name in scanned.imports:
                origin, locations = _locate(name, origins)
                if origin is None or not is_user_code(origin):
                    continue
                if origin in found and (origin in counted or not counts):
                    continue  # seen already, and as much as this path would count it
                found.add(origin)
                if counts:
                    counted.add(origin)
                if origin.endswith(".py"):
                    pending.append((origin, name if locations is not None else name.rpartition(".")[0],
                                    counts))
        return Dependencies(frozenset(found), opaque)

    found = {path: closure(path) for path in paths}
    if store is not None and used != known:  # only this run's files: edited ones drop out
        kept.write(store, {"format": _FORMAT, "scans": {key: [list(scan.imports), scan.opaque]
                                                        for key, scan in used.items()}})
    return found


def _known_scans(store: Path) -> dict[str, Scan]:
    """The scans kept in `store` by an earlier run, if it is intact and well-formed."""
    content = kept.read(store)
    if not (isinstance(content, dict) and content.get("format") == _FORMAT
            and isinstance(content.get("scans"), dict)):
        return {}
    known = {}
    for key, value in content["scans"].items():
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], list)
                and all(type(name) is str for name in value[0])
                and (value[1] is None or (isinstance(value[1], list) and len(value[1]) == 2
                                          and type(value[1][0]) is int and type(value[1][1]) is str))):
            return {}
        known[key] = Scan(tuple(value[0]), tuple(value[1]) if value[1] else None)
    return known


def _scan(path: str, package: str | None) -> Scan:
    """The import statements and opaque names of one file (`package`: for its relative imports)."""
    try:
        source = read_source_leniently(path)
        tree = ast.parse(source, path)
    except (OSError, SyntaxError, ValueError):
        return Scan((), None)  # keyed by its content all the same; nothing more to follow
    names: list[str] = []
    opaque = None
    for node in _statements(tree.body):  # imports are statements: no need to visit expressions
        if isinstance(node, ast.Import):
            names += [parent for alias in node.names for parent in _with_parents(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is not None:
                names += _with_parents(base)
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    if _OPAQUE_WORDS.search(source):  # rare: only then is every expression visited
        # where it is used rather than imported (`from flask import current_app`), when both
        found = min(((isinstance(node, ast.ImportFrom), getattr(node, "lineno", 0), name)
                     for node in ast.walk(tree) if (name := _opaque_name(node))), default=None)
        opaque = found[1:] if found else None
    return Scan(tuple(dict.fromkeys(names)), opaque)


def _statements(body: list[Any]) -> Iterator[ast.AST]:
    """Every statement, also those nested in functions, classes, branches, loops, try and match."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, None) or [])


def _opaque_name(node: ast.AST) -> str | None:
    """The name through which this node reads state that is not code, if it does."""
    if isinstance(node, ast.Name) and node.id in _OPAQUE_NAMES:
        return node.id
    if isinstance(node, ast.Attribute) and node.attr in _OPAQUE_NAMES:
        return node.attr
    if isinstance(node, ast.ImportFrom):
        return next((alias.name for alias in node.names if alias.name in _OPAQUE_NAMES), None)
    return None


def _absolute(node: ast.ImportFrom, package: str | None) -> str | None:
    if not node.level:
        return node.module
    if not package:
        return None  # a relative import outside a package fails when it runs
    try:
        return importlib.util.resolve_name("." * node.level + (node.module or ""), package)
    except (ImportError, ValueError):
        return None


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def _locate(name: str, known: dict[str, tuple[str | None, list[str] | None]]
            ) -> tuple[str | None, list[str] | None]:
    """A module's source file and, for a package, where its submodules are; without importing it
    (finding `a.b` with importlib would import `a`, running its code before the revision does)."""
    if name in known:
        return known[name]
    origin: str | None = None
    locations: list[str] | None = None
    module = sys.modules.get(name)
    if module is not None:
        origin = getattr(module, "__file__", None)
        path = getattr(module, "__path__", None)
        locations = list(path) if path is not None else None
    else:
        parent, _, _ = name.rpartition(".")
        search = _locate(parent, known)[1] if parent else None
        if not parent or search is not None:
            spec = _find_spec(name, search)
            if spec is not None:
                origin = spec.origin if spec.has_location else None
                search_locations = spec.submodule_search_locations
                locations = list(search_locations) if search_locations is not None else None
    real = os.path.realpath(origin) if origin and os.path.isfile(origin) else None
    known[name] = (real, locations)
    return known[name]


def _find_spec(name: str, path: list[str] | None) -> importlib.machinery.ModuleSpec | None:
    """What `import name` would find, asking the finders the way the import system does."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, path)
        except (ImportError, ValueError, OSError):
            continue
        if spec is not None:
            return spec
    return None
