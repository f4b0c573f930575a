"""Drift: autogenerate's comparison of the models with the schema the migrations build.

The same comparison `flask db migrate` and `flask db check` make, run through the project's own
env.py, on the scratch database the upgrade check left at head. Every difference becomes a finding
that points at the model (or at the revision that created what the models no longer have) and
carries the `op.*` code autogenerate would write.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

from migcheck import compat
from migcheck.databases import dialects
from migcheck.findings import Finding
from migcheck.project import Project, source
from migcheck.project.envrun import run_env
from migcheck.pyfile import read_source
from migcheck.state import reflected
from migcheck.usercode import relative

NAME = "drift"


class Difference(NamedTuple):
    bind: str | None
    diff: tuple[Any, ...]  # alembic's diff tuple, e.g. ("add_column", schema, table, Column)
    code: str  # the op.* code autogenerate would write for it
    dialect: sa.engine.Dialect  # the scratch database's, to show types as its DDL spells them
    target: tuple[sa.MetaData, ...]  # the metadata env.py handed autogenerate


def check(project: Project, reflections: Path | None = None) -> list[Finding]:
    """`reflections`: where the reflected schemas are kept between runs (state/reflected.py)."""
    differences: list[Difference] = []

    def compare(heads: tuple[str, ...], context: MigrationContext) -> list[Any]:
        assert context.connection is not None
        bind = project.scratch.bind_for(context.connection.engine)
        with reflected.reusing(context.connection, reflections) as info_cache:
            differences.extend(_differences(bind, context, info_cache))
        return []

    compare_defaults = project.options.compare_server_default and dialects.server_default_comparison(
        project.scratch.dialect)
    run_env(project, compare, **{**compat.MIGRATE_DEFAULTS, "compare_type": dialects.compare_type},
            compare_server_default=compare_defaults)
    blind_spots = _sqlite_blind_spots(project) if project.scratch.dialect == "sqlite" else []
    if not differences:
        return blind_spots
    # in file order: autogenerate lists the columns a table gains or loses in set order, which
    # changes from run to run (str hashing)
    return sorted(_findings(project, differences), key=lambda f: (f.path or "", f.line or 0, f.message)) \
        + blind_spots


def _sqlite_blind_spots(project: Project) -> list[Finding]:
    mappers = compat.mappers(project.db)
    return dialects.sqlite_blind_spots(
        compat.metadatas(project.db),
        lambda table, column: source.model_location(mappers, table, column, project.app.root_path))


def _differences(bind: str | None, context: MigrationContext, info_cache: dict[Any, Any] | None
                 ) -> list[Difference]:
    target = context.opts["target_metadata"]
    script = compat.produce_migrations(context, target, info_cache)
    targets = (target,) if isinstance(target, sa.MetaData) else tuple(target or ())
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
                if diff[0] == "modify_default" and dialects.same_server_default(
                        _show(diff[0], diff[5], context.dialect), _show(diff[0], diff[6], context.dialect)):
                    continue
                found.append(Difference(bind, diff, code, context.dialect, targets))
    return found


def _diff_tuples(op: ops.MigrateOperation) -> list[tuple[Any, ...]]:
    # A column change comes as a list of modify_* tuples (type, nullable, ...): one each.
    diffs = ops.UpgradeOps(ops=[op]).as_diffs()
    return [d for diff in diffs for d in (diff if isinstance(diff, list) else [diff])]


def _findings(project: Project, differences: list[Difference]) -> list[Finding]:
    mappers = compat.mappers(project.db)
    created = source.creation_locations(reversed(list(project.script.walk_revisions())))
    models = compat.metadatas(project.db)
    misplaced = [d for d in differences if _defined_by_models(d, models)]
    findings = [_wrong_metadata(project, [d for d in misplaced if d.bind == bind])
                for bind in dict.fromkeys(d.bind for d in misplaced)]
    options = _option_changes(differences)
    for removed, added, changed in options:
        findings.append(_option_finding(project, mappers, removed, added, changed))
    paired = [d for pair in options for d in pair[:2]]
    for difference in differences:
        if any(difference is d for d in misplaced + paired):
            continue
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


def _option_changes(differences: list[Difference]) -> list[tuple[Difference, Difference, list[str]]]:
    """Foreign keys autogenerate sees as dropped and added again that differ only in their ON DELETE /
    ON UPDATE: (removed, added, what differs, e.g. ["ON DELETE"])."""
    removed = [d for d in differences if d.diff[0] == "remove_fk"]
    added = [d for d in differences if d.diff[0] == "add_fk"]
    found: list[tuple[Difference, Difference, list[str]]] = []
    for old in removed:
        for new in added:
            if new.bind == old.bind and _fk_shape(new.diff[1]) == _fk_shape(old.diff[1]) \
                    and all(new is not n for _, n, _ in found):
                changed = [label for label, key in (("ON DELETE", "ondelete"), ("ON UPDATE", "onupdate"))
                           if _action(getattr(old.diff[1], key)) != _action(getattr(new.diff[1], key))]
                if changed:
                    found.append((old, new, changed))
                    break
    return found


def _fk_shape(fk: sa.ForeignKeyConstraint) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return (source.table_name(fk), tuple(fk.column_keys),
            tuple(element.target_fullname for element in fk.elements))


def _action(value: str | None) -> str | None:
    """A referential action as the database means it: none given is NO ACTION."""
    return None if value is None or value.upper() == "NO ACTION" else value.upper()


def _option_finding(project: Project, mappers: list[Any], removed: Difference, added: Difference,
                    changed: list[str]) -> Finding:
    fk = added.diff[1]
    table, columns = source.table_name(fk), ", ".join(fk.column_keys)
    keys = {"ON DELETE": "ondelete", "ON UPDATE": "onupdate"}
    said = "; ".join(f"{label} ({_action(getattr(fk, keys[label])) or 'none'} in the model, "
                     f"{_action(getattr(removed.diff[1], keys[label])) or 'none'} in the migrations)"
                     for label in changed)
    name = f"foreign key `{fk.name}`" if fk.name else "foreign key"
    column = fk.column_keys[0] if len(fk.column_keys) == 1 else None
    where = source.model_location(mappers, table, column, project.app.root_path)
    message = f"{name} on `{table}` ({columns}) differs only in {said}"
    if added.bind is not None:
        message += f" (bind `{added.bind}`)"
    return Finding(
        NAME, "drift-modify-fk", "error", message, where[0] if where else None, where[1] if where else None,
        f'generate a revision: `flask db migrate -m "change {fk.name or table} {" and ".join(changed)}"`, '
        "review it, and commit it",
        {"bind": added.bind, "table": table, "column": column, "code": removed.code + "\n" + added.code})


def _defined_by_models(difference: Difference, models: list[sa.MetaData]) -> bool:
    """A removal of something a model the app imports defines: env.py compares with other metadata."""
    kind, diff = difference.diff[0], difference.diff
    outside = [m for m in models if all(m is not t for t in difference.target)]
    if kind == "remove_table":
        return any(diff[1].name in m.tables for m in outside)
    if kind == "remove_column":
        return any(diff[2] in m.tables and diff[3].name in m.tables[diff[2]].c for m in outside)
    if kind in ("remove_index", "remove_constraint", "remove_fk"):
        item, table = diff[1], source.table_name(diff[1])
        return item.name is not None and any(
            getattr(o, "name", None) == item.name
            for m in outside if table in m.tables
            for o in (*m.tables[table].indexes, *m.tables[table].constraints))
    return False


def _wrong_metadata(project: Project, misplaced: list[Difference]) -> Finding:
    """One finding for every removal of what a bind's models define: the cause is env.py's target_metadata."""
    env = os.fspath(project.directory / "env.py")
    line, expression = _target_metadata_line(env)
    bind = misplaced[0].bind
    tables = sorted({table for d in misplaced for table in [_table_of(d.diff)] if table})
    given = sorted({t for d in misplaced for metadata in d.target for t in metadata.tables})
    handed = f"`{expression}`" if expression else "a MetaData"
    holds = (f"{len(given)} table{'' if len(given) == 1 else 's'}: "
             f"{', '.join(f'`{t}`' for t in given[:5])}{', …' if len(given) > 5 else ''}"
             if given else "no tables")
    shown = ", ".join(f"`{t}`" for t in tables[:8])
    shown += f" and {len(tables) - 8} more" if len(tables) > 8 else ""
    models = compat.bind_metadata(project.db, bind)
    of_bind = f" of bind `{bind}`" if bind is not None else ""
    if models is not None:
        wanted = f"the MetaData the models{of_bind} use (`{models}`)"
    else:  # Flask-SQLAlchemy 2.x with binds: db.metadata holds the other binds' tables too
        wanted = f"a MetaData of the models{of_bind} alone (`db.metadata` holds every bind's tables)"
    if bind is None and models is not None:
        fix = f"set target_metadata to `{models}` (Flask-Migrate's env.py does it with get_metadata())"
    else:
        fix = (f"hand {f'bind `{bind}`' if bind is not None else 'the default bind'} "
               f"{f'`{models}`' if models else 'a MetaData of its own tables'} (Flask-Migrate's "
               "multi-database env.py hands each bind `get_metadata(name)`)")
    return Finding(
        NAME, "drift-wrong-metadata", "error",
        f"env.py hands autogenerate {handed} ({holds}), not {wanted}: {len(tables)} "
        f"table{'' if len(tables) == 1 else 's'} that models define ({shown}) look removed to "
        "`flask db migrate` and `flask db check`",
        relative(env), line,
        f"{fix}; do not run `flask db migrate` before that: it would write drop_table for these "
        "tables and their data would be lost",
        {"bind": bind, "tables": tables},
    )


def _table_of(diff: tuple[Any, ...]) -> str | None:
    kind = diff[0]
    if kind == "remove_table":
        return str(diff[1].name)
    if kind == "remove_column":
        return str(diff[2])
    return source.table_name(diff[1])


def _target_metadata_line(env: str) -> tuple[int | None, str | None]:
    """The env.py line that sets what autogenerate compares with, and its expression: the
    assignment of the name passed as `target_metadata=`, else the keyword itself (the online
    `configure(connection=...)` call first)."""
    try:
        text = read_source(env)
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None, None
    keywords = sorted(
        ((not any(k.arg == "connection" for k in node.keywords), keyword)
         for node in ast.walk(tree) if isinstance(node, ast.Call)
         for keyword in node.keywords if keyword.arg == "target_metadata"),
        key=lambda pair: (pair[0], pair[1].value.lineno))
    assigned = {target.id: node for node in ast.walk(tree) if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    for _, keyword in keywords:
        value = keyword.value
        if isinstance(value, ast.Name) and value.id in assigned:
            node = assigned[value.id]
            return node.lineno, ast.get_source_segment(text, node.value)
        return value.lineno, ast.get_source_segment(text, value)
    return None, None


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
