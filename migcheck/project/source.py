"""Where things are written: model classes and columns, and the revisions that create objects.

Only consulted once a finding needs a file:line, so a clean run never parses a file for it.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic.operations import ops
from alembic.script import Script
from sqlalchemy.orm import Mapper

from migcheck.pyfile import DELETES, read_source, read_source_leniently
from migcheck.state import rawsql
from migcheck.usercode import relative

Location = tuple[str, int]


def model_location(mappers: Iterable[Mapper], table: str, column: str | None,
                   package_root: str) -> Location | None:
    """The model line that defines `table` (its class, or its `Table(...)` call), or `column` in it.

    Tables without a class (`db.Table(...)`) are looked for in the model modules, then in the
    app's package.
    """
    mappers = list(mappers)
    for mapper in mappers:
        if getattr(mapper.local_table, "name", None) == table:
            return _class_location(mapper, column)
    model_files = sorted({f for m in mappers if (f := inspect.getsourcefile(m.class_))})
    package_files = sorted(str(p) for p in Path(package_root).rglob("*.py"))
    for path in dict.fromkeys(model_files + package_files):
        found = _table_calls(path).get(table)
        if found:
            line = found[1].get(column, found[0]) if column else found[0]
            return relative(path), line
    return None


def _class_location(mapper: Mapper, column: str | None) -> Location | None:
    try:
        path = inspect.getsourcefile(mapper.class_)
        class_line = inspect.getsourcelines(mapper.class_)[1]
    except (OSError, TypeError):
        return None
    if path is None:
        return None
    if column is not None:
        key = next((prop.key for prop in mapper.column_attrs
                    if any(getattr(c, "name", None) == column for c in prop.columns)), column)
        for cls in mapper.class_.__mro__:  # the column may come from a mixin or a parent model
            found = _attribute_line(cls, key)
            if found:
                return found
    return relative(path), class_line


def _attribute_line(cls: type, name: str) -> Location | None:
    try:
        path = inspect.getsourcefile(cls)
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    if path is None:
        return None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return relative(path), start + node.lineno - 1
    return None


@cache
def _table_calls(path: str) -> dict[str, tuple[int, dict[str, int]]]:
    """`Table("name", ..., Column("col"))` calls in a file: name -> (line, {column: line})."""
    try:
        tree = ast.parse(read_source(path))
    except (OSError, SyntaxError, ValueError):
        return {}
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and called_name(node) == "Table" and node.args:
            name = string_value(node.args[0])
            if name:
                columns = {column: c.lineno for c in node.args[1:]
                           if isinstance(c, ast.Call) and c.args and (column := string_value(c.args[0]))}
                found[name] = (node.lineno, columns)
    return found


def creation_locations(scripts: Iterable[Script]) -> dict[tuple[str, ...], Location]:
    """Where the revisions create each object, the latest revision winning.

    Keys: ("table", t), ("column", t, c), ("index", name), ("constraint", name).
    `scripts` must run from base to head.
    """
    found: dict[tuple[str, ...], Location] = {}
    for script in scripts:
        for key, line in _created_in(script.path):
            found[key] = (relative(script.path), line)
    return found


@cache
def _created_in(path: str) -> tuple[tuple[tuple[str, ...], int], ...]:
    try:
        tree = ast.parse(read_source(path))
    except (OSError, SyntaxError, ValueError):
        return ()
    created: list[tuple[tuple[str, ...], int]] = []
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name.startswith("upgrade"):
            _collect(function.body, None, created)
    return tuple(created)


def _collect(body: list[ast.stmt], batch_table: str | None,
             created: list[tuple[tuple[str, ...], int]]) -> None:
    for statement in body:
        if isinstance(statement, ast.With):
            table = batch_table
            for item in statement.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and called_name(call) == "batch_alter_table":
                    table = string_value(call.args[0]) if call.args else None
            _collect(statement.body, table, created)
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Call):
                created.extend(_created_by(node, batch_table))


def _created_by(call: ast.Call, batch_table: str | None) -> list[tuple[tuple[str, ...], int]]:
    name, args = called_name(call), call.args
    first = string_value(args[0]) if args else None
    if name == "create_table" and first:
        columns = [(("column", first, c), col.lineno) for col in args[1:]
                   if isinstance(col, ast.Call) and called_name(col) == "Column"
                   for c in [string_value(col.args[0]) if col.args else None] if c]
        constraints = [(("constraint", c), arg.lineno) for arg in args[1:]
                       if isinstance(arg, ast.Call) and (called_name(arg) or "").endswith(
                           "Constraint")
                       for kw in arg.keywords if kw.arg == "name"
                       for c in [string_value(kw.value)] if c]
        return [(("table", first), call.lineno), *columns, *constraints]
    if name == "add_column":
        table = first if batch_table is None else batch_table
        column_call = args[1] if batch_table is None and len(args) > 1 else args[0] if args else None
        column = (string_value(column_call.args[0]) if isinstance(column_call, ast.Call)
                  and column_call.args else None)
        if table and column:
            return [(("column", table, column), call.lineno)]
    if name == "alter_column" and (first or batch_table):  # changed last here
        table = first if batch_table is None else batch_table
        column = string_value(args[1]) if batch_table is None and len(args) > 1 else first
        if table and column:
            return [(("column", table, column), call.lineno)]
    if name == "execute" and args:
        return [(key, call.lineno) for key in _raw_sql_creates(args[0])]
    if name == "create_index" and first:
        return [(("index", first), call.lineno)]
    if name in ("create_unique_constraint", "create_foreign_key", "create_check_constraint",
                "create_primary_key") and first:
        return [(("constraint", first), call.lineno)]
    return []


# alter_column(new_column_name=...); in SQL: RENAME COLUMN, PostgreSQL's RENAME a TO b, MySQL's CHANGE COLUMN
_RENAMES_COLUMN = re.compile(
    r"\bnew_column_name\b|\b(?:RENAME|CHANGE)\s+COLUMN\b|\bRENAME\s+(?!TO\b)\S+\s+TO\b", re.IGNORECASE)


def renames_columns(path: str) -> bool:
    """Whether a revision's source may rename a column (an unreadable file: True)."""
    try:
        return _RENAMES_COLUMN.search(read_source_leniently(path)) is not None
    except OSError:
        return True


def deleting_line(path: str, table: str) -> int | None:
    """The line of a revision's upgrade() that deletes the rows of `table` (`DELETE FROM setting`,
    `op.drop_table('setting')`, `setting.delete()`, ...), or None."""
    try:
        text = read_source(path)
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None
    lines = text.splitlines()
    named = re.compile(rf"(?<![\w.]){re.escape(table)}(?!\w)")
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name == "upgrade" and function.body:
            span = range(function.body[0].lineno, (function.end_lineno or function.lineno) + 1)
            code = [(n, lines[n - 1].split("#")[0]) for n in span if n <= len(lines)]
            return next((n for n, line in code if DELETES.search(line) and named.search(line)), None) \
                or next((n for n, line in code if DELETES.search(line)), None)
    return None


def foreign_key_to(path: str, table: str) -> int | None:
    """The line of a revision's upgrade() that makes a foreign key referring to `table`, or None."""
    try:
        tree = ast.parse(read_source(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name.startswith("upgrade"):
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and table in _referred(node):
                    return node.lineno
    return None


def _referred(call: ast.Call) -> set[str]:
    """The tables a ForeignKey / ForeignKeyConstraint / create_foreign_key call refers to."""
    name, args = called_name(call), call.args
    if name == "ForeignKey" and args:
        targets = [args[0]]
    elif name == "ForeignKeyConstraint" and len(args) > 1 and isinstance(args[1], (ast.List, ast.Tuple)):
        targets = list(args[1].elts)
    elif name == "create_foreign_key":
        # op.create_foreign_key(name, source, referent, ...); batch_op.create_foreign_key(name, referent, ...)
        return {t for arg in [*args[1:3], *(k.value for k in call.keywords if k.arg == "referent_table")]
                for t in [string_value(arg)] if t}
    else:
        return set()
    return {t.rpartition(".")[0].rpartition(".")[2] for arg in targets for t in [string_value(arg)] if t}


def _raw_sql_creates(argument: ast.expr) -> list[tuple[str, ...]]:
    """What `op.execute("CREATE INDEX ...")` (or `sa.text(...)`) creates, as creation keys."""
    if isinstance(argument, ast.Call) and called_name(argument) == "text" and argument.args:
        argument = argument.args[0]
    sql = argument.value if isinstance(argument, ast.Constant) and isinstance(argument.value, str) else None
    keys: list[tuple[str, ...]] = []
    for operation in rawsql.recognize(sql) if sql else []:
        if isinstance(operation, ops.CreateTableOp):
            keys.append(("table", operation.table_name))
        elif isinstance(operation, ops.CreateIndexOp) and operation.index_name:
            keys.append(("index", str(operation.index_name)))
        elif isinstance(operation, ops.AddColumnOp):
            keys.append(("column", operation.table_name, operation.column.name))
        elif isinstance(operation, ops.AlterColumnOp):
            keys.append(("column", operation.table_name, operation.column_name))
        elif isinstance(operation, ops.AddConstraintOp):
            name = getattr(operation, "constraint_name", None)  # each kind of constraint has one
            keys += [("constraint", str(name))] if name else []
    return keys


def called_name(node: ast.expr) -> str | None:
    """The name a call (or the callee of one) calls: `op.create_table(...)` -> "create_table"."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def string_value(node: ast.expr) -> str | None:
    """A string literal, also inside `op.f("...")` / `batch_op.f("...")`."""
    if isinstance(node, ast.Call) and called_name(node) == "f" and node.args:
        node = node.args[0]
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def table_name(item: sa.Table | sa.Index | sa.Constraint) -> str:
    table = item if isinstance(item, sa.Table) else item.table
    return table.name if isinstance(table, sa.Table) else "?"
