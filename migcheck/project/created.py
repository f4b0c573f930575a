"""Which tables (and indexes) the revision files create, read from their source without running them.

An upgrade from an empty database that fails on a missing table means one of two things: the table
comes later in the history (a defect of the revision), or no revision creates it at all, because the
project's installs never start from empty (`db.create_all()` and `stamp head`, squashed history): then
migcheck needs the starting schema (start.py) and the revision is not to blame. The source tells them
apart: `op.create_table` / `batch_op.create_index` / `op.rename_table` calls, `sa.Table(...)` made in
a revision, and CREATE TABLE / CREATE INDEX / RENAME in any SQL string the file holds.
"""

from __future__ import annotations

import ast
import functools

from alembic.operations import ops
from alembic.script import Script

from migcheck.project import source
from migcheck.pyfile import read_source
from migcheck.state import rawsql

# function name -> where the name it creates is: (position, keyword)
_CREATING = {"create_table": (0, "table_name"), "create_index": (0, "index_name"),
             "rename_table": (1, "new_table_name"), "Table": (0, "name")}


def creators(scripts: list[Script], name: str) -> list[Script]:
    """The revisions whose source creates a table or index called `name` (case-insensitive)."""
    wanted = name.lower()
    return [script for script in scripts if wanted in _created(script.path)]


@functools.lru_cache(maxsize=1024)
def _created(path: str) -> frozenset[str]:
    try:
        tree = ast.parse(read_source(path), path)
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = source.called_name(node)
            if function not in _CREATING or any(k.arg in ("autoload", "autoload_with")
                                                for k in node.keywords):
                continue  # not a creation; a reflected Table exists already
            position, keyword = _CREATING[function]
            if len(node.args) > position:
                found.add(source.string_value(node.args[position]))
            found.update(source.string_value(k.value) for k in node.keywords if k.arg == keyword)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 10:
            found.update(_created_by_sql(node.value))
    return frozenset(name.rpartition(".")[2].lower() for name in found if name)


def _created_by_sql(text: str) -> list[str]:
    try:
        recognized = rawsql.recognize(text)
    except Exception:  # not SQL after all: a docstring, a message
        return []
    names = []
    for operation in recognized:
        if isinstance(operation, ops.CreateTableOp):
            names.append(operation.table_name)
        elif isinstance(operation, ops.CreateIndexOp) and operation.index_name:
            names.append(operation.index_name)
        elif isinstance(operation, ops.RenameTableOp):
            names.append(operation.new_table_name)
    return names
