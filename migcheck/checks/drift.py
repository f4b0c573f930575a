"""Drift: autogenerate's comparison of the models with the schema the migrations build.

The same comparison `flask db migrate` and `flask db check` make, run through the project's own
env.py, on the scratch database the upgrade check left at head. Every difference becomes a finding
that points at the model (or at the revision that created what the models no longer have) and
carries the `op.*` code autogenerate would write.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

from migcheck import compat
from migcheck.databases import dialects
from migcheck.findings import Finding
from migcheck.project import Project, source
from migcheck.project.envrun import run_env

NAME = "drift"


class Difference(NamedTuple):
    bind: str | None
    diff: tuple[Any, ...]  # alembic's diff tuple, e.g. ("add_column", schema, table, Column)
    code: str  # the op.* code autogenerate would write for it
    dialect: sa.engine.Dialect  # the scratch database's, to show types as its DDL spells them


def check(project: Project) -> list[Finding]:
    differences: list[Difference] = []

    def compare(heads: tuple[str, ...], context: MigrationContext) -> list[Any]:
        assert context.connection is not None
        bind = project.scratch.bind_for(context.connection.engine)
        differences.extend(_differences(bind, context))
        return []

    run_env(project, compare, **compat.MIGRATE_DEFAULTS,
            compare_server_default=project.options.compare_server_default and dialects.compare_server_default)
    blind_spots = _sqlite_blind_spots(project) if project.scratch.dialect == "sqlite" else []
    if not differences:
        return blind_spots
    return _findings(project, differences) + blind_spots


def _sqlite_blind_spots(project: Project) -> list[Finding]:
    mappers = compat.mappers(project.db)
    return dialects.sqlite_blind_spots(
        compat.metadatas(project.db),
        lambda table, column: source.model_location(mappers, table, column, project.app.root_path))


def _differences(bind: str | None, context: MigrationContext) -> list[Difference]:
    script = produce_migrations(context, context.opts["target_metadata"])
    render = {key: context.opts[key] for key in ("render_as_batch", "sqlalchemy_module_prefix",
                                                 "alembic_module_prefix", "user_module_prefix")
              if context.opts.get(key) is not None}
    found = []
    for op in script.upgrade_ops.ops if script.upgrade_ops else []:
        if isinstance(op, ops.ModifyTableOps):  # one finding per column / index change
            singles: list[ops.MigrateOperation] = [
                ops.ModifyTableOps(op.table_name, [sub], schema=op.schema) for sub in op.ops]
        else:
            singles = [op]
        for single in singles:
            code = compat.render_python_code(ops.UpgradeOps(ops=[single]), **render)
            code = "\n".join(line for line in code.splitlines()
                             if line.strip() and not line.strip().startswith("#"))
            for diff in _diff_tuples(single):
                found.append(Difference(bind, diff, code, context.dialect))
    return found


def _diff_tuples(op: ops.MigrateOperation) -> list[tuple[Any, ...]]:
    # A column change comes as a list of modify_* tuples (type, nullable, ...): one each.
    diffs = ops.UpgradeOps(ops=[op]).as_diffs()
    return [d for diff in diffs for d in (diff if isinstance(diff, list) else [diff])]


def _findings(project: Project, differences: list[Difference]) -> list[Finding]:
    mappers = compat.mappers(project.db)
    created = source.creation_locations(reversed(list(project.script.walk_revisions())))
    findings = []
    for difference in differences:
        rule, message, table, column, created_key, slug = _describe(difference.diff, difference.dialect)
        if created_key is not None:
            where = created.get(created_key) or created.get(("table", table))
            hint = _removal_hint(created_key[0], slug)
        else:
            where = source.model_location(mappers, table, column, project.app.root_path)
            hint = f'generate a revision: `flask db migrate -m "{slug}"`, review it, and commit it'
        if difference.bind is not None:
            message += f" (bind `{difference.bind}`)"
        findings.append(Finding(
            NAME, rule, "error", message, where[0] if where else None,
            where[1] if where else None, hint,
            {"bind": difference.bind, "table": table, "column": column, "code": difference.code},
        ))
    return findings


def _removal_hint(kind: str, slug: str) -> str:
    drop = f'generate the drop with `flask db migrate -m "{slug}"`'
    if kind == "table":
        return (f"if the model was removed on purpose, {drop}; if it still exists, make sure the app "
                "imports the module that defines it (autogenerate only sees imported models)")
    return f"if the {kind} was removed from the model on purpose, {drop}; otherwise put it back in the model"


def _describe(diff: tuple[Any, ...], dialect: sa.engine.Dialect
              ) -> tuple[str, str, str, str | None, tuple[str, ...] | None, str]:
    """(rule, message, table, column, key of the created object for removals, migration slug)."""
    kind = diff[0]
    rule = "drift-" + kind.replace("_", "-")
    if kind in ("add_table", "remove_table"):
        table = diff[1].name
        if kind == "add_table":
            return (rule, f"table `{table}` is in the models but no migration creates it",
                    table, None, None, f"create {table}")
        return (rule, f"table `{table}` is created by the migrations but no model defines it",
                table, None, ("table", table), f"drop {table}")
    if kind in ("add_column", "remove_column"):
        table, column = diff[2], diff[3].name
        if kind == "add_column":
            return (rule, f"column `{table}.{column}` is in the model but no migration creates it",
                    table, column, None, f"add {table}.{column}")
        return (rule, f"column `{table}.{column}` is created by the migrations but is not in "
                "the model", table, column, ("column", table, column), f"drop {table}.{column}")
    if kind in ("add_table_comment", "remove_table_comment"):
        table = diff[1].name
        wanted = (f"the model says {diff[1].comment!r}" if kind == "add_table_comment"
                  else "the model has none")
        return (rule, f"comment of table `{table}` differs: {wanted}", table, None, None,
                f"change {table} comment")
    if kind.startswith("modify_"):
        table, column, old, new = diff[2], diff[3], diff[5], diff[6]
        what = {"modify_type": "type", "modify_nullable": "nullability",
                "modify_default": "server default", "modify_comment": "comment"}.get(kind, kind)
        return (rule, f"{what} of column `{table}.{column}` differs: the migrations give "
                f"{_show(kind, old, dialect)}, the model says {_show(kind, new, dialect)}",
                table, column, None, f"change {table}.{column} {what}")
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint",
                "add_fk", "remove_fk"):
        item = diff[1]
        table = source.table_name(item)
        label = _label(item)
        columns = ", ".join(c.name for c in item.columns) if hasattr(item, "columns") else ""
        column = next(iter(item.columns)).name if columns and len(item.columns) == 1 else None  # 1.3: no [0]
        added = kind.startswith("add")
        named = f"{label} `{item.name}`" if item.name else f"unnamed {label}"
        message = (f"{named} on `{table}` ({columns}) "
                   + ("is in the model but no migration creates it" if added
                      else "is created by the migrations but is not in the model"))
        key = ("index" if "index" in kind else "constraint", str(item.name))
        slug = item.name or f"{label} on {table} ({columns})"
        return (rule, message, table, column, None if added else key,
                f"{'add' if added else 'drop'} {slug}")
    table = next((x for x in diff[1:] if isinstance(x, str)), "?")
    return (rule, f"{kind.replace('_', ' ')}: {diff[1:]}", table, None, None, kind)


def _label(item: Any) -> str:
    if isinstance(item, sa.Index):
        return "unique index" if item.unique else "index"
    if isinstance(item, sa.ForeignKeyConstraint):
        return "foreign key"
    if isinstance(item, sa.UniqueConstraint):
        return "unique constraint"
    return type(item).__name__


def _show(kind: str, value: Any, dialect: sa.engine.Dialect) -> str:
    if kind == "modify_nullable":
        return "NULL allowed" if value else "NOT NULL"
    if value is None:
        return "none"
    if kind == "modify_comment":
        return repr(value)
    if isinstance(value, sa.types.TypeEngine):
        try:
            return value.compile(dialect=dialect)  # VARCHAR(64), as the DDL says it
        except sa.exc.CompileError:  # a dialect-specific type
            return repr(value)
    if isinstance(value, str):  # a reflected server default is SQL text already
        return value
    arg = getattr(value, "arg", value)  # a DefaultClause wraps a string literal or an expression
    return f"'{arg}'" if isinstance(arg, str) else str(getattr(arg, "text", arg))
