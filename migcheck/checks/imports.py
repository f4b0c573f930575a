"""Imports: models and tables in the project's source that the app never registers.

Autogenerate only sees what is on the app's metadata once the app has loaded, so a model in a module
nothing imports is invisible to `flask db migrate` ("No changes in schema detected") and to
`flask db check`. This check reads the project's source, imports the modules the app did not load
that look like they define models, and reports every table that then appears on the app's metadata.
A project whose models are all imported costs a directory walk: loaded files are never read.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import sqlalchemy as sa

from migcheck import compat
from migcheck.findings import Finding
from migcheck.project import Project, source
from migcheck.pyfile import read_source
from migcheck.usercode import relative, user_location

NAME = "imports"

# The rules of the findings that stand for a table the app does not register (they replace drift's).
UNIMPORTED = ("imports-model-not-imported", "imports-table-not-imported")

# Never searched: tests, migrations, virtualenvs, installed packages, build output.
_SKIP_DIRS = frozenset({"tests", "test", "migrations", "site-packages", "dist-packages",
                        "node_modules", "__pycache__", "build", "dist"})
# Cheap first look at a file's bytes: a class on something called ...Model / ...Base, a table name
# or a Table(...) call. Most files the app did not load (scripts, tools) are never parsed.
_MAYBE_MODELS = re.compile(rb"^[ \t]*class\s+\w+\s*\([^)]*(?:Model|Base)\b|__table(?:name)?__|Table\(",
                           re.MULTILINE)
_MODEL_BASE = re.compile(r"(Model|Base)$")


class Candidate(NamedTuple):
    module: str  # the dotted name to import it by
    path: str
    sys_path: str | None  # a directory to put on sys.path for the import, when none there holds it


class Definitions(NamedTuple):
    classes: dict[str, int]  # model-like class name -> line
    tables: dict[str, int]  # table name of a `Table("name", ...)` call -> line


class Defined(NamedTuple):
    """Where a table that appeared on the app's metadata is defined."""

    name: str  # the class, or the variable holding the Table
    is_class: bool
    module: str
    path: str | None
    line: int | None


class Imports(NamedTuple):
    """What one source file imports."""

    module: str
    path: str
    loaded: bool  # the app loaded this file
    imported: tuple[tuple[str, int, bool], ...]  # (module it may name, line, inside a function)


class Importer(NamedTuple):
    """Where the app imports its other models."""

    imports: Imports
    line: int


def check(project: Project) -> list[Finding]:
    files = list(_walk(_roots(project), os.path.realpath(project.directory)))
    loaded = _loaded_files()
    candidates = [c for path in files if _loaded_name(path, loaded) is None
                  and (c := _candidate(path)) is not None]
    if not candidates:
        return []
    seen = _table_ids(project)
    known_modules = set(sys.modules)
    findings = []
    for candidate in candidates:
        ahead = _table_ids(project)
        failed = _import(candidate)
        if failed is not None:  # tables it defined before it failed: the warning stands for them
            findings.append(failed)
            seen |= _table_ids(project) - ahead
    new_modules = [module for name, module in list(sys.modules.items())
                   if name not in known_modules and module is not None]
    ours = {id(metadata) for metadata in compat.metadatas(project.db)}
    new_tables = [(bind, table) for bind, table in compat.bound_tables(project.db) if id(table) not in seen]
    findings += _other_metadata(new_modules, ours, {os.path.realpath(path) for path in files})
    if new_tables:
        findings += _unimported(project, new_tables, new_modules, files, loaded)
    return findings


def _table_ids(project: Project) -> set[int]:
    return {id(table) for _bind, table in compat.bound_tables(project.db)}


def supersede(findings: list[Finding], unimported: list[Finding]) -> list[Finding]:
    """`findings` without the drift findings about tables this check explains better.

    Drift sees a table the migrations create but whose model is not imported as a table to drop.
    """
    tables = {(f.details["bind"], f.details["table"]) for f in unimported if f.rule in UNIMPORTED}
    return [f for f in findings
            if f.check != "drift" or (f.details.get("bind"), f.details.get("table")) not in tables]


def _roots(project: Project) -> list[str]:
    return list(dict.fromkeys(os.path.abspath(p) for p in (project.app.root_path,
                                                           *project.options.sources)))


def _walk(roots: list[str], migrations: str) -> Iterator[str]:
    seen: set[str] = set()
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not _skipped(os.path.join(folder, d), d, migrations))
            for name in sorted(names):
                path = os.path.join(folder, name)
                if name.endswith(".py") and not _is_test_file(name) and path not in seen:
                    seen.add(path)
                    yield path


def _skipped(path: str, name: str, migrations: str) -> bool:
    return (name.startswith(".") or name in _SKIP_DIRS or name.endswith(".egg-info")
            or os.path.isfile(os.path.join(path, "pyvenv.cfg"))  # a virtualenv, whatever its name
            or os.path.realpath(path) == migrations)


def _is_test_file(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def _loaded_files() -> dict[str, dict[str, str]]:
    """File name -> {absolute path -> module name} of every loaded module."""
    found: dict[str, dict[str, str]] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            path = os.path.abspath(path)
            found.setdefault(os.path.basename(path), {})[path] = name
    return found


def _loaded_name(path: str, loaded: dict[str, dict[str, str]]) -> str | None:
    """The name the app loaded `path` by, if it did.

    Symlinks are resolved only for loaded files of the same name: resolving every loaded module's
    path would cost more than the rest of the check.
    """
    same_name = loaded.get(os.path.basename(path), {})
    if path in same_name:
        return same_name[path]
    real = os.path.realpath(path)
    return next((module for file, module in same_name.items() if os.path.realpath(file) == real), None)


def _candidate(path: str) -> Candidate | None:
    """A module the app did not load whose source looks like it defines models or tables."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return None
    if not _MAYBE_MODELS.search(data):
        return None
    definitions = _definitions(path)
    if definitions is None:
        # It cannot even be parsed: import it anyway, so the error is reported where it is.
        return _named(path)
    return _named(path) if definitions.classes or definitions.tables else None


def _named(path: str) -> Candidate | None:
    """How to import `path`: its regular package chain, then namespace directories, up to sys.path."""
    file = Path(path)
    parts = [] if file.name == "__init__.py" else [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    on_path = {os.path.realpath(entry or ".") for entry in sys.path}
    names, current = parts, folder
    while True:
        if os.path.realpath(current) in on_path:
            return Candidate(".".join(names), path, None)
        if current.parent == current or not current.name.isidentifier():
            return Candidate(".".join(parts), path, os.fspath(folder))
        names, current = [current.name, *names], current.parent


@cache
def _definitions(path: str) -> Definitions | None:
    """Model-like classes and `Table(...)` calls that run at import (not inside functions)."""
    try:
        tree = ast.parse(read_source(path), path)
    except (OSError, SyntaxError, ValueError):
        return None
    definitions = Definitions({}, {})
    _collect(tree.body, definitions)
    return definitions


def _collect(statements: Sequence[ast.AST], definitions: Definitions) -> None:
    """Statement by statement, into if / try / with blocks, never into functions or class bodies."""
    for statement in statements:
        if isinstance(statement, ast.ClassDef):
            if _model_like(statement):
                definitions.classes[statement.name] = statement.lineno
            continue
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        children = list(ast.iter_child_nodes(statement))
        blocks = (ast.stmt, ast.excepthandler)
        _collect([child for child in children if isinstance(child, blocks)], definitions)
        for node in (n for child in children if not isinstance(child, blocks) for n in ast.walk(child)):
            if (isinstance(node, ast.Call) and source.called_name(node.func) == "Table" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                definitions.tables[node.args[0].value] = node.lineno


def _model_like(node: ast.ClassDef) -> bool:
    """A class on something called ...Model / ...Base, or one that names its table."""
    if any(_MODEL_BASE.search(source.called_name(base) or "") for base in node.bases):
        return True
    return any(isinstance(target, ast.Name) and target.id in ("__tablename__", "__table__")
               for statement in node.body if isinstance(statement, (ast.Assign, ast.AnnAssign))
               for target in (statement.targets if isinstance(statement, ast.Assign)
                              else [statement.target]))


def _import(candidate: Candidate) -> Finding | None:
    """Import a candidate inside the app context; its failure is a warning, never a crash.

    The scratch guard stays active: a module that connects somewhere at import is refused.
    """
    added = candidate.sys_path is not None and candidate.sys_path not in sys.path
    if added:
        sys.path.append(candidate.sys_path)  # type: ignore[arg-type]
    try:
        with (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()),
              warnings.catch_warnings()):
            warnings.simplefilter("ignore")  # e.g. SQLAlchemy on a class name used twice
            importlib.import_module(candidate.module)
    except (Exception, SystemExit) as exc:
        where = user_location(exc) if isinstance(exc, Exception) else None
        error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        return Finding(
            NAME, "imports-failed", "warning",
            f"could not import `{candidate.module}` to look for models the app does not import: "
            f"{error}", where[0] if where else relative(candidate.path), where[1] if where else None,
            "fix the error; if the module is not meant to be imported, this warning is all it costs",
            {"module": candidate.module, "error": error},
        )
    finally:
        if added:
            sys.path.remove(candidate.sys_path)  # type: ignore[arg-type]
    return None


def _other_metadata(modules: list[ModuleType], ours: set[int], files: set[str]) -> list[Finding]:
    """Models of a declarative base the app's db does not use: not ours to check, but say so."""
    findings = []
    for module in modules:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or os.path.realpath(path) not in files:
            continue
        names = [name for name, value in list(vars(module).items())
                 if isinstance(value, type) and value.__module__ == module.__name__
                 and isinstance(table := value.__dict__.get("__table__"), sa.Table)
                 and id(table.metadata) not in ours]
        if names:
            definitions = _definitions(path)
            findings.append(Finding(
                NAME, "imports-other-metadata", "info",
                f"`{module.__name__}` defines models on a declarative base the app's db does not use "
                f"({', '.join(f'`{n}`' for n in names)}); migcheck does not check them",
                relative(path), definitions.classes.get(names[0]) if definitions else None,
                "if they belong in the app's database, derive them from db.Model (or give their "
                "base `metadata = db.metadata`)", {"module": module.__name__, "classes": names},
            ))
    return findings


def _unimported(project: Project, new_tables: list[tuple[str | None, sa.Table]],
                new_modules: list[ModuleType], files: list[str],
                loaded: dict[str, dict[str, str]]) -> list[Finding]:
    """One finding per table that appeared on the app's metadata once the candidates were imported."""
    new_names = {module.__name__ for module in new_modules}
    model_modules = {mapper.class_.__module__ for mapper in compat.mappers(project.db)} - new_names
    sources = []
    for path in files:
        loaded_as = _loaded_name(path, loaded)
        name = loaded_as or _name_of(path)
        if name:
            sources.append(_imports(path, name, loaded_as is not None))
    created = source.creation_locations(reversed(list(project.script.walk_revisions())))
    findings = []
    for bind, table in new_tables:
        defined = _defined(table, new_modules)
        lazy = [f"{relative(s.path)}:{line}" for s in sources for module, line, in_function in s.imported
                if in_function and module == defined.module]
        importer = _importer(defined.module, model_modules, sources)
        findings.append(_finding(project, bind, table, defined, importer, dict.fromkeys(lazy),
                                 created.get(("table", table.name))))
    return findings


def _name_of(path: str) -> str | None:
    candidate = _named(path)
    return candidate.module if candidate else None


def _imports(path: str, module: str, loaded: bool) -> Imports:
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    return Imports(module, path, loaded, tuple(
        (name, line, in_function) for level, base, names, line, in_function in _import_statements(path)
        for name in _resolve(level, base, names, package)))


@cache
def _import_statements(path: str) -> tuple[tuple[int, str, tuple[str, ...], int, bool], ...]:
    """Every import statement in a file: (level, module, names, line, inside a function)."""
    try:
        tree = ast.parse(read_source(path), path)
    except (OSError, SyntaxError, ValueError):
        return ()
    found: list[tuple[int, str, tuple[str, ...], int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((0, alias.name, (), child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append((child.level, child.module or "", tuple(a.name for a in child.names),
                              child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(tree, False)
    return tuple(found)


def _resolve(level: int, base: str, names: tuple[str, ...], package: str) -> list[str]:
    """The modules an import statement may import (`from a import b` may mean module `a.b`)."""
    if level:
        parts = package.split(".") if package else []
        if level - 1 > len(parts):
            return []
        base = ".".join([*parts[:len(parts) - level + 1], *([base] if base else [])])
    return [base, *(f"{base}.{name}" if base else name for name in names)]


def _defined(table: sa.Table, modules: list[ModuleType]) -> Defined:
    """The class mapped to `table` (or the variable holding it) in the modules just imported."""
    for module in modules:
        for name, value in list(vars(module).items()):
            is_class = (isinstance(value, type) and value.__module__ == module.__name__
                        and value.__dict__.get("__table__") is table)
            if is_class or value is table:
                path = getattr(module, "__file__", None)
                definitions = _definitions(path) if isinstance(path, str) else None
                lines = (definitions.classes if is_class else definitions.tables) if definitions else {}
                return Defined(name, is_class, module.__name__,
                               relative(path) if isinstance(path, str) else None,
                               lines.get(name if is_class else table.name))
    return Defined(table.name, False, "", None, None)


def _importer(target: str, model_modules: set[str], sources: list[Imports]) -> Importer | None:
    """Where the app imports its other models: in the package nearest `target`, else in the file
    that imports most of them (at import time before inside functions, e.g. an app factory)."""
    found: dict[str, tuple[tuple[int, ...], Importer]] = {}
    for imports in sources:
        hits = sorted((in_function, line, module) for module, line, in_function in imports.imported
                      if module in model_modules)
        if imports.loaded and hits:
            rank = (len({m for in_function, _, m in hits if not in_function}), len({m for *_, m in hits}),
                    sum(m.startswith(imports.module + ".") for m in model_modules), -len(imports.module))
            found[imports.module] = (rank, Importer(imports, hits[0][1]))
    parent = target
    while "." in parent:
        parent = parent.rpartition(".")[0]
        if parent in found:
            return found[parent][1]
    return max(found.values())[1] if found else None


def _finding(project: Project, bind: str | None, table: sa.Table, defined: Defined,
             importer: Importer | None, lazy: dict[str, None],
             created: tuple[str, int] | None) -> Finding:
    on_bind = "" if bind is None else f"bind `{bind}`"
    if defined.is_class:
        what = f"model `{defined.name}` (table `{table.name}`{', ' + on_bind if on_bind else ''})"
    else:
        what = f"table `{table.name}`" + (f" ({on_bind})" if on_bind else "")
    where = f" in `{defined.module}`" if defined.module else ""
    message = (f"{what} is defined{where}, which the app does not import when it loads, so "
               "autogenerate cannot see it")
    if lazy:
        message += f" (it is imported only inside a function: {', '.join(lazy)})"
    if created:
        message += (f"; the migrations create the table ({created[0]}:{created[1]}), so "
                    "`flask db migrate` would even generate a drop_table for it")
        then = "then `flask db check` compares it with the migrations"
    else:
        message += ("; no migration creates the table either, and `flask db migrate` says "
                    '"No changes in schema detected"')
        then = f'then `flask db migrate -m "create {table.name}"` will generate the table'
    return Finding(
        NAME, UNIMPORTED[0] if defined.is_class else UNIMPORTED[1], "error", message,
        defined.path, defined.line, f"{_fix(project, defined, importer)}; {then}",
        {"bind": bind, "table": table.name, "name": defined.name, "module": defined.module,
         "import_in": relative(importer.imports.path) if importer else None},
    )


def _fix(project: Project, defined: Defined, importer: Importer | None) -> str:
    if not defined.module:
        return "make sure the app imports the module that defines it"
    if importer is None:
        path = getattr(sys.modules.get(project.app.import_name), "__file__", None)
        return (f"import `{defined.module}`" + (f" in `{relative(path)}`" if path else "")
                + " so that it is imported when the app loads")
    module, path = importer.imports.module, importer.imports.path
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    if package and defined.module.startswith(package + "."):
        statement = f"from .{defined.module[len(package) + 1:]} import {defined.name}"
    else:
        statement = f"from {defined.module} import {defined.name}"
    return (f"import `{defined.module}` in `{relative(path)}` next to the import of the app's other "
            f"models at line {importer.line} (e.g. `{statement}`)")
