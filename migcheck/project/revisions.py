"""Revision files known from an earlier run, not imported until something needs more than their ids.

Alembic imports every revision file to build the revision graph (`flask db check` pays that too). A
warm run walks nothing: it needs from each file only what Alembic's Script reads when it loads one
(revision, down_revision, branch_labels, depends_on, the docstring). A run that imports a *plain*
file keeps those values, with the names the module defines, under the hash of the file's content.
A later run builds the Script from them, with a stand-in module that imports the file when
anything else is asked of it (a walk that runs its upgrade imports them all first: see `load_all`).

A file is plain when importing it can only ever do that again: its module-level code is a
docstring, imports, assignments and undecorated function definitions, with no call (nor attribute
access, which a module's `__getattr__` can turn into one) in anything evaluated at import; and when
every module it imports is already imported (checked at each run, so importing it has no side effect:
a revision that imports a model module the app does not import is imported, and its tables reach
the metadata as with Alembic). Any other file, and one edited since (its hash), is imported as
Alembic does, with the same errors. The store is one file per migrations directory in the cache
directory, hash-checked like the cache's entries; it is keyed on the Python and library versions.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory

from migcheck import __version__, compat, kept

FORMAT = 1
_READ = ("revision", "down_revision", "branch_labels", "depends_on")  # what Script(...) reads
_EVALUATED = (ast.Constant, ast.Name, ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Set, ast.Dict,
              ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.expr_context, ast.operator,
              ast.unaryop, ast.boolop, ast.cmpop)

Known = dict[str, Any]  # content hash -> what a later run needs of a plain revision file (see _entry)


class _Unimported(types.ModuleType):
    """A revision module as an earlier run found it; imports the file for anything else."""

    def __getattr__(self, name: str) -> Any:
        if name not in _names[self]:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(_imported(self), name)


_names: weakref.WeakKeyDictionary[_Unimported, frozenset[str]] = weakref.WeakKeyDictionary()
_importers: weakref.WeakKeyDictionary[_Unimported, Callable[[], types.ModuleType]] = \
    weakref.WeakKeyDictionary()
_real: weakref.WeakKeyDictionary[_Unimported, types.ModuleType] = weakref.WeakKeyDictionary()


def _imported(module: _Unimported) -> types.ModuleType:
    if module not in _real:
        _real[module] = _importers[module]()
    return _real[module]


def load(script: ScriptDirectory, cache_root: Path | None) -> list[Script]:
    """Alembic's Scripts of every revision file (as compat.load_revisions), the plain files known
    from an earlier run not imported; `cache_root` None: every file imported."""
    if cache_root is None:
        return compat.load_revisions(script)
    store = _store(cache_root, script)
    known = _read(store)
    seen: Known = {}

    def load_python_file(directory: str | os.PathLike[str], filename: str | os.PathLike[str]
                         ) -> types.ModuleType:
        path = os.path.join(directory, filename)
        try:
            content = Path(path).read_bytes() if path.endswith(".py") else None
        except OSError:
            content = None
        if content is None:
            return real(os.fspath(directory), os.fspath(filename))
        digest = hashlib.sha256(content).hexdigest()
        entry = known.get(digest)
        if entry is not None and _importable(entry["imports"]):
            seen[digest] = entry
            return _stand_in(entry, path, lambda: real(os.fspath(directory), os.fspath(filename)))
        module = real(os.fspath(directory), os.fspath(filename))
        entry = _entry(content, path, module)
        if entry is not None:
            seen[digest] = entry
        return module

    real = compat.load_python_file
    with compat.revision_files_loaded_by(load_python_file):
        scripts = compat.load_revisions(script)
    if seen != known:  # only this run's files: edited ones drop out
        kept.write(store, {"format": FORMAT, "files": seen})
    return scripts


def load_all(scripts: list[Script]) -> None:
    """Import the revision files not imported yet, in file order, as Alembic would have: before a
    walk runs them (and before reads.py records what the walk opens)."""
    for script in scripts:
        if isinstance(script.module, _Unimported):
            script.module = _imported(script.module)


def _stand_in(entry: dict[str, Any], path: str, importer: Callable[[], types.ModuleType]
              ) -> _Unimported:
    module = _Unimported(re.sub(r"\W", "_", os.path.basename(path)), entry["doc"])  # as Alembic names it
    module.__file__ = path
    for name, value in entry["values"].items():
        setattr(module, name, _literal(value))
    _names[module] = frozenset(entry["names"])
    _importers[module] = importer
    return module


def _literal(text: str) -> Any:
    """A value kept as its repr; the usual ones (None, an id) without parsing it."""
    if text == "None":
        return None
    if len(text) > 1 and text[0] == text[-1] == "'" and not set(text[1:-1]) & {"'", "\\"}:
        return text[1:-1]
    return ast.literal_eval(text)


def _importable(imports: list[list[str | None]]) -> bool:
    """Whether importing these again has no effect: every module is imported already."""
    for name, attribute in imports:
        assert name is not None
        parts = name.split(".")
        if not all(".".join(parts[:end]) in sys.modules for end in range(1, len(parts) + 1)):
            return False
        if attribute is not None and attribute not in vars(sys.modules[name]) \
                and f"{name}.{attribute}" not in sys.modules:
            return False
    return True


def _entry(content: bytes, path: str, module: types.ModuleType) -> dict[str, Any] | None:
    """What a later run needs of a plain revision file that was just imported; None if not plain."""
    try:
        tree = ast.parse(content, path)
    except (SyntaxError, ValueError):
        return None
    imports = _plain(tree)
    if imports is None:
        return None
    if "revision" not in vars(module) or "down_revision" not in vars(module):
        return None  # Alembic reads the id from the file name, or fails: imported every time
    values = {}
    for name in _READ:
        if name in vars(module):
            value = vars(module)[name]
            text = repr(value)
            with suppress(ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                if ast.literal_eval(text) == value and type(ast.literal_eval(text)) is type(value):
                    values[name] = text
            if name not in values:
                return None  # a value that text cannot hold exactly
    doc = module.__doc__
    if doc is not None and type(doc) is not str:
        return None
    return {"values": values, "doc": doc, "names": sorted(vars(module)), "imports": imports}


def _plain(tree: ast.Module) -> list[list[str | None]] | None:
    """The modules (and names from them) a plain module imports; None if it is not plain."""
    imports: list[list[str | None]] = []
    future_annotations = False
    evaluated: list[ast.AST] = []
    for number, node in enumerate(tree.body):
        if isinstance(node, ast.Expr) and number == 0 and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Import):
            imports += [[alias.name, None] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None or any(a.name == "*" for a in node.names):
                return None
            if node.module == "__future__":
                future_annotations |= any(a.name == "annotations" for a in node.names)
            else:
                imports += [[node.module, alias.name] for alias in node.names]
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            evaluated.append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.simple:
            evaluated += [node.value] if node.value is not None else []
            evaluated += [node.annotation] if not future_annotations else []
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.decorator_list:
            arguments = node.args
            evaluated += [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
            if not future_annotations:
                evaluated += [a.annotation for a in _arguments(arguments) if a.annotation is not None]
                evaluated += [node.returns] if node.returns is not None else []
        else:
            return None
    if not all(isinstance(n, _EVALUATED) for expression in evaluated for n in ast.walk(expression)):
        return None
    return imports


def _arguments(arguments: ast.arguments) -> Iterator[ast.arg]:
    yield from (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)
    yield from (a for a in (arguments.vararg, arguments.kwarg) if a is not None)


def _store(cache_root: Path, script: ScriptDirectory) -> Path:
    parts = [__version__, sys.version, *(metadata.version(n) for n in ("alembic", "sqlalchemy")),
             *sorted(os.path.realpath(d) for d in script._version_locations)]
    return cache_root / "revisions" / (hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20] + ".json")


def _read(store: Path) -> Known:
    """The store if intact and well-formed; else nothing is known (and this run replaces it)."""
    known = kept.read(store)
    if not (isinstance(known, dict) and known.get("format") == FORMAT and isinstance(known.get("files"), dict)
            and all(_well_formed(entry) for entry in known["files"].values())):
        return {}
    return known["files"]


def _well_formed(entry: Any) -> bool:
    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(type(v) is str for v in value)

    if not (isinstance(entry, dict) and set(entry) == {"values", "doc", "names", "imports"}):
        return False
    values, imports = entry["values"], entry["imports"]
    return (isinstance(values, dict) and "revision" in values and "down_revision" in values
            and set(values) <= set(_READ) and strings(list(values.values()))
            and type(entry["doc"]) in (str, type(None)) and strings(entry["names"])
            and isinstance(imports, list)
            and all(isinstance(i, list) and len(i) == 2 and type(i[0]) is str
                    and type(i[1]) in (str, type(None)) for i in imports))
