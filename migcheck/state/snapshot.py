"""Schema snapshots for the round trip: cheap to take, exact to compare, and able to name a difference.

On SQLite a snapshot is the DDL text in `sqlite_master` (one query). Equal text means an equal schema;
when the text differs (batch mode rewrites tables, so it can differ for equal schemas), both snapshots
are rebuilt in in-memory databases and reflected. On PostgreSQL one catalog query reads every table's
columns, indexes and keys, and the snapshot is made from its rows: SQLAlchemy's reflection asks about
ten queries for the same. On MySQL/MariaDB one catalog query first reads a fingerprint of everything
reflection reads; a snapshot whose fingerprint equals one of the last few is that one's (a correct
downgrade gives back the state before its upgrade, the re-upgrade the upgrade's), else the tables
are reflected.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NamedTuple

import sqlalchemy as sa

from migcheck import compat

VERSION_TABLE = "alembic_version"


class Difference(NamedTuple):
    kind: str  # "extra" (in actual only), "missing" (in expected only), "changed" (detail says how)
    what: str  # as a message names it: "column `post.x`", "index `ix_x` on `post`", "table `post`"
    detail: str | None
    table: str
    column: str | None = None  # for a column
    name: str | None = None  # for an index or constraint


class Snapshot(NamedTuple):
    dialect: str
    ddl: dict[str, tuple[tuple[str, str, str], ...]]  # SQLite: table -> its (type, name, sql) rows
    shape: dict[str, dict[str, Any]]  # other databases: table -> reflected aspects


def take(connection: sa.Connection, version_table: str = VERSION_TABLE) -> Snapshot:
    dialect = connection.dialect.name
    if dialect == "postgresql" and (connection.dialect.server_version_info or (0,)) >= (9, 5):
        return Snapshot(dialect, {}, _catalog_shape(connection, version_table))
    if dialect != "sqlite":
        return Snapshot(dialect, {}, _reflect_unless_seen(connection, version_table))
    ddl: dict[str, list[tuple[str, str, str]]] = {}
    cursor = connection.connection.cursor()  # the plain DB-API cursor: this runs 3 times a revision
    cursor.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                   "AND name NOT LIKE 'sqlite_%' ORDER BY tbl_name, type, name")
    for kind, name, table, sql in cursor.fetchall():
        if table != version_table:
            ddl.setdefault(table, []).append((kind, name, sql))
    return Snapshot(dialect, {table: tuple(rows) for table, rows in ddl.items()}, {})


def tables(snapshot: Snapshot) -> list[str]:
    """The snapshot's tables (not views), the version table left out."""
    if snapshot.dialect == "sqlite":
        return [table for table, rows in snapshot.ddl.items() if any(kind == "table" for kind, _, _ in rows)]
    return list(snapshot.shape)


def differences(expected: Snapshot, actual: Snapshot, between: Snapshot | None = None
                ) -> list[Difference]:
    """What changed from `expected` to `actual`, one Difference per object (the detail of an extra
    or missing column, index or constraint is its definition, which tells a rename).

    `between`: a snapshot taken on the way (after the upgrade, for a downgrade). An index that
    MySQL made there for a foreign key and kept when the key was dropped is not "extra"."""
    if expected.dialect == "sqlite":
        changed = {t for t in expected.ddl.keys() | actual.ddl.keys()
                   if expected.ddl.get(t) != actual.ddl.get(t)
                   and _normalized(expected.ddl.get(t)) != _normalized(actual.ddl.get(t))}
        if not changed:
            return []
        before, after = _shape(expected, changed), _shape(actual, changed)
    else:
        before, after = expected.shape, actual.shape
    found: list[Difference] = []
    for table in sorted(before.keys() | after.keys()):
        what = f"{before.get(table, after.get(table, {})).get('kind', 'table')} `{table}`"
        if table not in after:
            found.append(Difference("missing", what, None, table))
        elif table not in before:
            found.append(Difference("extra", what, None, table))
        elif "sql" in before[table]:
            found.append(Difference("changed", what, "its definition changed", table))
        elif before[table] != after[table]:
            made = between.shape.get(table, {}).get("made_for_keys", ()) if between else ()
            found += _table_differences(table, before[table], after[table], made)
    return found


def _normalized(rows: tuple[tuple[str, str, str], ...] | None) -> tuple[tuple[str, str, str], ...]:
    """DDL text without what SQLite keeps verbatim but means nothing: quoting, spacing."""
    return tuple((kind, name, _NOISE.sub(r"\1", _SPACE.sub(" ", sql.replace('"', ""))))
                 for kind, name, sql in rows or ())


_SPACE = re.compile(r"\s+")
_NOISE = re.compile(r" ?([(),]) ?")


def _table_differences(table: str, before: dict[str, Any], after: dict[str, Any],
                       made_for_keys: tuple[str, ...] = ()) -> list[Difference]:
    found: list[Difference] = []
    for aspect, label in (("columns", "column"), ("indexes", "index"),
                          ("uniques", "unique constraint"), ("foreign_keys", "foreign key")):
        old, new = before[aspect], after[aspect]
        for name in sorted(old.keys() | new.keys(), key=str):
            column = aspect == "columns"
            what = f"{label} `{table}.{name}`" if column else f"{label} `{name}` on `{table}`"
            named = {"column": name} if column else {"name": name}
            if name not in new:
                found.append(Difference("missing", what, _show(old[name]), table, **named))
            elif name not in old:
                if not (aspect == "indexes" and name in made_for_keys):  # MySQL's, kept: not extra
                    found.append(Difference("extra", what, _show(new[name]), table, **named))
            elif old[name] != new[name]:
                found.append(Difference("changed", what, f"{_show(old[name])} became {_show(new[name])}",
                                        table, **named))
    if before["primary_key"] != after["primary_key"]:
        found.append(Difference("changed", f"primary key of `{table}`",
                                f"{before['primary_key']} became {after['primary_key']}", table))
    return found


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _shape(snapshot: Snapshot, tables: set[str]) -> dict[str, dict[str, Any]]:
    """Rebuild these SQLite tables from their DDL in a private in-memory database and reflect them."""
    engine = sa.create_engine("sqlite://")
    shape: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        for table in sorted(tables & snapshot.ddl.keys()):
            rows = snapshot.ddl[table]
            if not any(kind == "table" for kind, _, _ in rows):
                # A view or trigger: compare its text, there is nothing to reflect.
                shape[table] = {"kind": rows[0][0], "sql": _normalized(rows)}
                continue
            for kind in ("table", "index"):
                for row_kind, _name, sql in rows:
                    if row_kind == kind:
                        compat.exec_sql(connection, sql)
        shape.update(_reflect(connection, VERSION_TABLE))
    engine.dispose()
    return shape


# PostgreSQL (9.5 on): per table, its columns in order, its indexes but the primary key's (key columns
# only, an expression as its text) and its primary, unique and foreign keys, as JSON arrays; what
# SQLAlchemy's reflection reads for a snapshot, in one query. {key_columns}: indnkeyatts from 11 on,
# before which an index had no INCLUDE columns.
_POSTGRESQL_CATALOG = """
SELECT c.relname,
  (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                                    pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum)::text
     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT json_agg(json_build_array(i.relname, x.indisunique,
          ARRAY(SELECT CASE WHEN x.indkey[k - 1] = 0 THEN pg_get_indexdef(x.indexrelid, k, true)
                            ELSE (SELECT a.attname FROM pg_attribute a
                                   WHERE a.attrelid = c.oid AND a.attnum = x.indkey[k - 1]) END
                  FROM generate_series(1, x.{key_columns}) k ORDER BY k)) ORDER BY i.relname)::text
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid AND NOT x.indisprimary),
  (SELECT json_agg(json_build_array(o.conname, o.contype,
          ARRAY(SELECT a.attname FROM unnest(o.conkey) WITH ORDINALITY k(n, i)
                  JOIN pg_attribute a ON a.attrelid = o.conrelid AND a.attnum = k.n ORDER BY k.i),
          (SELECT r.relname FROM pg_class r WHERE r.oid = o.confrelid),
          ARRAY(SELECT a.attname FROM unnest(o.confkey) WITH ORDINALITY k(n, i)
                  JOIN pg_attribute a ON a.attrelid = o.confrelid AND a.attnum = k.n ORDER BY k.i))
          ORDER BY o.conname)::text
     FROM pg_constraint o WHERE o.conrelid = c.oid AND o.contype IN ('p', 'u', 'f'))
FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relname"""


def _catalog_shape(connection: sa.Connection, version_table: str) -> dict[str, dict[str, Any]]:
    """The tables' shape, as `_reflect` makes it, from PostgreSQL's catalog; a type as the server
    spells it (`character varying(30)`), an expression index's column as its expression."""
    key_columns = "indnkeyatts" if (connection.dialect.server_version_info or (0,)) >= (11,) else "indnatts"
    shape = {}
    for table, columns, indexes, keys in compat.exec_sql(
            connection, _POSTGRESQL_CATALOG.format(key_columns=key_columns)):
        if table == version_table:
            continue
        constraints = json.loads(keys or "[]")
        shape[table] = {
            "columns": {name: {"type": type_, "nullable": nullable, "default": default}
                        for name, type_, nullable, default in json.loads(columns or "[]")},
            "primary_key": next((tuple(cols) for _, kind, cols, _, _ in constraints if kind == "p"), ()),
            "indexes": {name: {"columns": tuple(cols), "unique": unique}
                        for name, unique, cols in json.loads(indexes or "[]")},
            "made_for_keys": (),
            "uniques": {name: tuple(cols) for name, kind, cols, _, _ in constraints if kind == "u"},
            "foreign_keys": {name: {"columns": tuple(cols), "references": f"{referred}({', '.join(to)})"}
                             for name, kind, cols, referred, to in constraints if kind == "f"},
        }
    return shape


# MySQL and MariaDB: per table, everything its reflected shape is made of, and more (a superset only
# costs a reflection).
_FINGERPRINTS = {
    "mysql": """
SELECT 't', TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, NULL, NULL, NULL, NULL, NULL
  FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
UNION ALL
SELECT 'c', TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA,
       COLLATION_NAME, COLUMN_COMMENT
  FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
UNION ALL
SELECT 'i', TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, SUB_PART, INDEX_TYPE, NULL, NULL
  FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
UNION ALL
SELECT 'k', TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION, COLUMN_NAME, REFERENCED_TABLE_NAME,
       REFERENCED_COLUMN_NAME, NULL, NULL, NULL
  FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE()
ORDER BY 1, 2, 3, 4, 5""",
}
_FINGERPRINTS["mariadb"] = _FINGERPRINTS["mysql"]
_SEEN: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}  # fingerprint -> shape, the latest last
_SEEN_UP_TO = 4  # before, after the upgrade, after the downgrade, after the re-upgrade
_SEEN_TABLES: dict[tuple[Any, ...], dict[str, Any]] = {}  # a table's fingerprint -> its shape


def _reflect_unless_seen(connection: sa.Connection, version_table: str) -> dict[str, dict[str, Any]]:
    """The shape of a recent snapshot with the same fingerprint; else the tables reflected, but for
    those whose own fingerprint was seen in recent snapshots (a revision mostly changes one table)."""
    dialect = connection.dialect
    query = _FINGERPRINTS.get(dialect.name)
    if query is None:
        return _reflect(connection, version_table)
    rows = [tuple(row) for row in compat.exec_sql(connection, query)]
    key = _fingerprint_key(dialect, version_table, rows)
    shape = _SEEN.pop(key, None)
    if shape is None:
        shape = _reflect_changed(connection, version_table, rows)
    _SEEN[key] = shape
    while len(_SEEN) > _SEEN_UP_TO:
        del _SEEN[next(iter(_SEEN))]
    return shape


def _reflect_changed(connection: sa.Connection, version_table: str, rows: list[tuple[Any, ...]]
                     ) -> dict[str, dict[str, Any]]:
    dialect = connection.dialect
    per_table: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        per_table.setdefault(str(row[1]), []).append(row)  # a fingerprint row's table
    keys = {table: _fingerprint_key(dialect, table, table_rows) for table, table_rows in per_table.items()}
    tables = [t for t in sa.inspect(connection).get_table_names() if t != version_table]
    known = {t: _SEEN_TABLES.pop(keys[t]) for t in tables if keys.get(t) in _SEEN_TABLES}
    shape = {**known, **_reflect(connection, version_table, [t for t in tables if t not in known])}
    for table in tables:
        if table in keys:
            _SEEN_TABLES[keys[table]] = shape[table]
    while len(_SEEN_TABLES) > _SEEN_UP_TO * (len(tables) + 1):
        del _SEEN_TABLES[next(iter(_SEEN_TABLES))]
    return {table: shape[table] for table in tables}


def _fingerprint_key(dialect: sa.Dialect, label: str, rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """What a shape is kept under: the server's kind and version, what the rows cover (the version
    table left out of a whole schema, or a table's name) and a digest of the rows."""
    return dialect.name, dialect.server_version_info, label, hashlib.sha256(repr(rows).encode()).digest()


def _reflect(connection: sa.Connection, version_table: str, tables: list[str] | None = None
             ) -> dict[str, dict[str, Any]]:
    """The shape of these tables (default: all but the version table)."""
    inspector = sa.inspect(connection)
    if tables is None:
        tables = [t for t in inspector.get_table_names() if t != version_table]
    dialect = connection.dialect
    shape = {}
    for table, reflected in compat.reflected_tables(inspector, tables).items():
        foreign_keys = reflected["foreign_keys"]
        indexes = reflected["indexes"]
        shape[table] = {
            "columns": {c["name"]: {"type": _type(c["type"], dialect), "nullable": c["nullable"],
                                    "default": c.get("default")}
                        for c in reflected["columns"]},
            "primary_key": tuple(reflected["pk_constraint"].get("constrained_columns") or ()),
            "indexes": {i["name"]: {"columns": tuple(str(c) for c in i["column_names"]),
                                    "unique": bool(i["unique"])}
                        for i in indexes if not _made_for_a_foreign_key(dialect, i, foreign_keys)},
            "made_for_keys": tuple(i["name"] for i in indexes
                                   if _made_for_a_foreign_key(dialect, i, foreign_keys)),
            "uniques": {u["name"] or f"({', '.join(u['column_names'])})": tuple(u["column_names"])
                        for u in reflected["unique_constraints"]},
            "foreign_keys": {
                fk["name"] or f"({', '.join(fk['constrained_columns'])})": {
                    "columns": tuple(fk["constrained_columns"]),
                    "references": f"{fk['referred_table']}({', '.join(fk['referred_columns'])})"}
                for fk in foreign_keys},
        }
    return shape


def _made_for_a_foreign_key(dialect: sa.Dialect, index: Any, foreign_keys: list[Any]) -> bool:
    """MySQL and MariaDB create a plain index for a foreign key on their own, named after the
    constraint or its first column, and rename it when the key is dropped and added again: not
    something a migration made (Alembic's autogenerate leaves these out too)."""
    if dialect.name not in ("mysql", "mariadb") or index["unique"]:
        return False
    columns = list(index["column_names"])
    return any(list(fk["constrained_columns"])[:len(columns)] == columns
               and index["name"] in (fk["name"], columns[0]) for fk in foreign_keys)


def _type(type_: Any, dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # a reflected type the dialect cannot render: its repr still compares
        return repr(type_)
