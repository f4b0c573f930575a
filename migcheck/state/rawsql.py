"""What the raw SQL given to `op.execute(...)` does to the schema, as Alembic operations.

Not a SQL parser: a recognizer for the statements that migrations write by hand and that the safety
check has rules for, turned into the `op.*` operations that do the same, so one set of rules judges
both. It covers, per statement (several may be separated by `;`):
- CREATE TABLE; DROP TABLE; RENAME TABLE (MySQL);
- CREATE [UNIQUE] INDEX [CONCURRENTLY] ... ON table; DROP INDEX [CONCURRENTLY];
- ALTER TABLE table, with each comma-separated action one of: ADD [COLUMN] (NOT NULL, DEFAULT),
  ADD [CONSTRAINT name] UNIQUE / FOREIGN KEY / CHECK (NOT VALID), DROP [COLUMN], RENAME [COLUMN]
  a TO b, RENAME TO t, ALTER [COLUMN] c SET NOT NULL / [SET DATA] TYPE t, MODIFY (MySQL);
  the harmless ones (DROP NOT NULL, SET/DROP DEFAULT, VALIDATE CONSTRAINT, DROP CONSTRAINT);
  a new type is read with the server dialect's own type names, so the rules compare it with the
  column's reflected type exactly as they do for `op.alter_column(type_=...)`;
- PostgreSQL's `DO $$ ... $$` blocks in PL/pgSQL: the plain statements of their body, whatever IF /
  LOOP / EXCEPTION they sit in (`EXECUTE` of anything but a string literal is unchecked).
A DROP ... IF EXISTS (or ALTER TABLE IF EXISTS, DROP COLUMN IF EXISTS) comes as `IfExists`: it does
nothing where the object is missing. Dollar-quoted bodies (functions, DO) are never split on their `;`.
Data statements (INSERT, UPDATE, DELETE, SELECT) and new objects that lock nothing (CREATE VIEW,
FUNCTION, TYPE, EXTENSION, SEQUENCE, SCHEMA, TRIGGER; COMMENT ON; GRANT) give nothing; a view created
in scope may be dropped again. Any other statement that changes the schema (DROP VIEW of an older
view included), or an ALTER TABLE action not listed, is `Unchecked`: the check says so rather than
guessing, except on a table created in scope.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic.operations import ops


class Unchecked(NamedTuple):
    statement: str
    table: str | None = None  # the table an ALTER TABLE changes (nothing to check if it is new)


class IfExists(NamedTuple):
    """An operation that does nothing where its object does not exist (`DROP TABLE IF EXISTS t`)."""
    operation: ops.MigrateOperation | Unchecked
    kind: str  # "table" (or view), "column" or "index": the object that must exist
    schema: str | None
    table: str | None  # the column's table; the index's, if the statement names it
    name: str  # the table, column or index


Recognized = ops.MigrateOperation | Unchecked | IfExists

_NAME = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+)'
_QUALIFIED = rf"{_NAME}(?:\s*\.\s*{_NAME})?"
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
# One piece of SQL text: a dollar-quoted body, a quoted string or name, a `;`, or anything else.
_TOKEN = re.compile(r"\$([A-Za-z_]\w*|)\$.*?\$\1\$|'[^']*'|\"[^\"]*\"|`[^`]*`|;|[^;'\"`$]+|.", re.S)
_DO = re.compile(r"DO\s+(?:LANGUAGE\s+(\w+)\s+)?(?:\$([A-Za-z_]\w*|)\$(.*)\$\2\$|'(.*)')"
                 r"(?:\s+LANGUAGE\s+(\w+))?\s*$", re.I | re.S)
# PL/pgSQL control flow around a plain statement, and its statements that change nothing.
_PLPGSQL_PREFIX = re.compile(
    r"(?:<<\w+>>|DECLARE\b.*?\bBEGIN\b|BEGIN\b|END\s+(?:IF|LOOP|CASE)\b|END\b(?:\s+\w+)?\s*$|"
    r"ELSE\b|(?:IF|ELSIF|ELSEIF|WHEN)\b.*?\bTHEN\b|EXCEPTION\s+WHEN\b.*?\bTHEN\b|"
    r"(?:FOR|WHILE|FOREACH)\b.*?\bLOOP\b|LOOP\b)\s*", re.I | re.S)
_PLPGSQL_HARMLESS = re.compile(r"(NULL|RAISE|PERFORM|RETURN|CONTINUE|EXIT|GET\s+DIAGNOSTICS|"
                               r"[\w.]+\s*:?=)(\W|$)", re.I)
_EXECUTE_LITERAL = re.compile(r"EXECUTE\s+'((?:[^']|'')*)'\s*$", re.I | re.S)
_HARMLESS = re.compile(
    r"(INSERT|UPDATE|DELETE|SELECT|WITH|SET|SHOW|EXPLAIN|ANALYZE|VACUUM|COMMENT\s+ON|GRANT|REVOKE|"
    r"CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|TYPE|EXTENSION|SEQUENCE|SCHEMA|TRIGGER|"
    r"TEMP|TEMPORARY)|BEGIN|COMMIT|PRAGMA)\b", re.I)
_CREATE_VIEW = re.compile(rf"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+|RECURSIVE\s+)?VIEW\s+"
                          rf"(?:IF\s+NOT\s+EXISTS\s+)?({_QUALIFIED})", re.I)
_DROP_VIEW = re.compile(rf"DROP\s+(?:MATERIALIZED\s+)?VIEW\s+(IF\s+EXISTS\s+)?({_QUALIFIED})", re.I)
_SCHEMA_CHANGE = re.compile(r"(CREATE|ALTER|DROP|RENAME|TRUNCATE|REINDEX|CLUSTER)\b", re.I)
_CREATE_TABLE = re.compile(rf"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({_QUALIFIED})", re.I)
_DROP_TABLE = re.compile(rf"DROP\s+TABLE\s+(IF\s+EXISTS\s+)?({_QUALIFIED}(?:\s*,\s*{_QUALIFIED})*)", re.I)
_RENAME_TABLE = re.compile(rf"RENAME\s+TABLE\s+({_QUALIFIED})\s+TO\s+({_QUALIFIED})\s*$", re.I)
_CREATE_INDEX = re.compile(
    rf"CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_QUALIFIED}\s+)?"
    rf"ON\s+(?:ONLY\s+)?({_QUALIFIED})", re.I)
_DROP_INDEX = re.compile(rf"DROP\s+INDEX\s+(CONCURRENTLY\s+)?(IF\s+EXISTS\s+)?({_QUALIFIED})"
                         rf"(?:\s+ON\s+({_QUALIFIED}))?", re.I)
_ALTER_TABLE = re.compile(rf"ALTER\s+TABLE\s+(IF\s+EXISTS\s+)?(?:ONLY\s+)?({_QUALIFIED})\s+(.*)$",
                          re.I | re.S)


def statements(sql: str) -> list[str]:
    """The statements in `sql`, without comments (split on `;` outside quotes and dollar quotes)."""
    found, current = [], ""
    for token in _TOKEN.finditer(_COMMENTS.sub(" ", sql)):
        if token.group(0) == ";":
            found.append(current)
            current = ""
        else:
            current += token.group(0)
    return [" ".join(part.split()) for part in [*found, current] if part.strip()]


def recognize(sql: str, dialect: sa.engine.Dialect | None = None) -> list[Recognized]:
    """What `sql` does, statement by statement; `dialect` (the server's) reads type names."""
    found: list[Recognized] = []
    for statement in statements(sql):
        found += _statement(statement, dialect)
    return found


def _statement(sql: str, dialect: sa.engine.Dialect | None) -> list[Recognized]:
    if match := _DO.match(sql):
        language = (match.group(1) or match.group(5) or "plpgsql").lower()
        body = match.group(3) if match.group(3) is not None else match.group(4).replace("''", "'")
        if language != "plpgsql":
            return [Unchecked(sql)] if _SCHEMA_CHANGE.search(body) else []
        return _plpgsql(body, dialect)
    if match := _CREATE_VIEW.match(sql):  # recorded like a table: dropping it again is fine
        schema, view = _split(match.group(1))
        return [ops.CreateTableOp(view, [], schema=schema)]
    if match := _DROP_VIEW.match(sql):  # the deployed code may read an old one: unchecked
        if_exists, name = match.groups()
        schema, view = _split(name)
        unchecked = Unchecked(sql, _name(view, schema))
        return [IfExists(unchecked, "table", schema, None, view) if if_exists else unchecked]
    if match := _CREATE_TABLE.match(sql):
        schema, table = _split(match.group(1))
        return [ops.CreateTableOp(table, [], schema=schema)]
    if match := _CREATE_INDEX.match(sql):
        unique, concurrently, name, table = match.groups()
        schema, table = _split(table)
        index: Any = _unquote(name.strip()) if name else None  # an unnamed index; Alembic 1.7 says str
        return [ops.CreateIndexOp(index, table, [], schema=schema, unique=bool(unique),
                                  postgresql_concurrently=bool(concurrently))]
    if match := _DROP_INDEX.match(sql):
        concurrently, if_exists, name, table = match.groups()
        schema, index = _split(name)
        on = _split(table)[1] if table else None
        dropped = ops.DropIndexOp(index, table_name=on, schema=schema,
                                  postgresql_concurrently=bool(concurrently))
        return [IfExists(dropped, "index", schema, on, index) if if_exists else dropped]
    if match := _DROP_TABLE.match(sql):
        if_exists, names = match.groups()
        found: list[Recognized] = []
        for schema, table in map(_split, re.findall(_QUALIFIED, names)):
            dropped_table = ops.DropTableOp(table, schema=schema)
            found.append(IfExists(dropped_table, "table", schema, None, table) if if_exists
                         else dropped_table)
        return found
    if match := _RENAME_TABLE.match(sql):
        schema, old = _split(match.group(1))
        return [ops.RenameTableOp(old, _split(match.group(2))[1], schema=schema)]
    if match := _ALTER_TABLE.match(sql):
        if_exists, name, actions = match.groups()
        schema, table = _split(name)
        found = []
        for action in _actions(actions):
            operation = _action(table, schema, action, dialect)
            if operation is _IGNORED:
                continue
            recognized: Recognized = operation or Unchecked(sql, _name(table, schema))
            if if_exists and not isinstance(recognized, IfExists):
                recognized = IfExists(recognized, "table", schema, None, table)
            found.append(recognized)
        return found
    if _HARMLESS.match(sql) or not _SCHEMA_CHANGE.match(sql):
        return []
    return [Unchecked(sql)]


def _plpgsql(body: str, dialect: sa.engine.Dialect | None) -> list[Recognized]:
    """The plain statements of a PL/pgSQL block, taken out of the control flow around them."""
    found: list[Recognized] = []
    for statement in statements(body):
        while prefix := _PLPGSQL_PREFIX.match(statement):
            statement = statement[prefix.end():]
        if not statement or _PLPGSQL_HARMLESS.match(statement):
            continue
        if match := _EXECUTE_LITERAL.match(statement):
            found += recognize(match.group(1).replace("''", "'"), dialect)
        elif re.match(r"EXECUTE\b", statement, re.I):  # SQL built at run time
            found.append(Unchecked(statement))
        else:
            found += _statement(statement, dialect)
    return found


_IGNORED = ops.MigrateOperation()  # an action that locks nothing worth a rule


def _action(table: str, schema: str | None, action: str, dialect: sa.engine.Dialect | None
            ) -> ops.MigrateOperation | IfExists | None:
    words = action.split()
    upper = [w.upper() for w in words]
    if upper[:1] == ["ADD"]:
        rest, rest_upper = words[1:], upper[1:]
        if rest_upper[:1] == ["CONSTRAINT"]:
            rest, rest_upper = rest[2:], rest_upper[2:]
        not_valid = "NOT VALID" in " ".join(rest_upper)
        if rest_upper[:2] == ["FOREIGN", "KEY"]:
            return ops.CreateForeignKeyOp(None, table, "", [], [], source_schema=schema,
                                          postgresql_not_valid=not_valid)
        if rest_upper[:1] == ["CHECK"]:
            return ops.CreateCheckConstraintOp(None, table, sa.text("1=1"), schema=schema,
                                               postgresql_not_valid=not_valid)
        if rest_upper[:1] == ["UNIQUE"]:
            if "USING INDEX" in " ".join(rest_upper):
                return _IGNORED  # the safe way: the index was built concurrently before
            return ops.CreateUniqueConstraintOp(None, table, [], schema=schema)
        if rest_upper[:1] in (["PRIMARY"], ["INDEX"], ["KEY"], ["FULLTEXT"], ["SPATIAL"]):
            return None
        if rest_upper[:1] == ["COLUMN"]:
            rest, rest_upper = rest[1:], rest_upper[1:]
        if rest_upper[:3] == ["IF", "NOT", "EXISTS"]:
            rest, rest_upper = rest[3:], rest_upper[3:]
        if not rest:
            return None
        definition = " ".join(rest_upper)
        default = re.search(r"\bDEFAULT\s+(\S+(?:\s*\([^)]*\))?)", " ".join(rest[1:]), re.I)
        added = sa.Column(_unquote(rest[0]), sa.types.NullType(),
                          nullable="NOT NULL" not in definition and "PRIMARY KEY" not in definition,
                          server_default=sa.text(default.group(1)) if default else None)
        return ops.AddColumnOp(table, added, schema=schema)
    if upper[:1] == ["DROP"]:
        rest, rest_upper = words[1:], upper[1:]
        if rest_upper[:1] in (["CONSTRAINT"], ["INDEX"], ["KEY"], ["FOREIGN"], ["PRIMARY"], ["CHECK"]):
            return _IGNORED
        if rest_upper[:1] == ["COLUMN"]:
            rest, rest_upper = rest[1:], rest_upper[1:]
        if not rest:
            return None
        if rest_upper[:2] == ["IF", "EXISTS"] and len(rest) > 2:
            column = _unquote(rest[2])
            return IfExists(ops.DropColumnOp(table, column, schema=schema), "column", schema, table, column)
        return ops.DropColumnOp(table, _unquote(rest[0]), schema=schema)
    if upper[:1] == ["RENAME"]:
        if upper[1:2] in (["TO"], ["AS"]) and len(words) == 3:
            return ops.RenameTableOp(table, _split(words[2])[1], schema=schema)
        rest = words[2:] if upper[1:2] == ["COLUMN"] else words[1:]
        if len(rest) == 3 and rest[1].upper() == "TO":
            return ops.AlterColumnOp(table, _unquote(rest[0]), schema=schema,
                                     modify_name=_unquote(rest[2]))
        return None
    if upper[:1] in (["ALTER"], ["MODIFY"]):
        rest, rest_upper = words[1:], upper[1:]
        if rest_upper[:1] == ["COLUMN"]:
            rest, rest_upper = rest[1:], rest_upper[1:]
        if not rest:
            return None
        column, change = _unquote(rest[0]), " ".join(rest_upper[1:])
        if upper[0] == "MODIFY":  # MySQL: the whole new definition
            definition = " ".join(rest[1:])
            return ops.AlterColumnOp(table, column, schema=schema, modify_type=_type(definition, dialect),
                                     modify_nullable=False if "NOT NULL" in change else None)
        if change == "SET NOT NULL":
            return ops.AlterColumnOp(table, column, schema=schema, modify_nullable=False)
        if change.startswith(("TYPE ", "SET DATA TYPE ")):
            new_type = " ".join(rest[2:] if change.startswith("TYPE ") else rest[4:])
            return ops.AlterColumnOp(table, column, schema=schema, modify_type=_type(new_type, dialect))
        if change in ("DROP NOT NULL", "DROP DEFAULT") or change.startswith("SET DEFAULT "):
            return _IGNORED
        return None
    if upper[:2] == ["VALIDATE", "CONSTRAINT"]:
        return _IGNORED
    return None


# A type as SQL writes it: name (of one or more words), (arguments), PostgreSQL's time zone and array.
_TYPE = re.compile(r"([A-Za-z_]\w*(?:\s+(?:varying|precision))?)\s*(?:\(\s*(\d+(?:\s*,\s*\d+)?)\s*\))?"
                   r"(\s+(?:with|without)\s+time\s+zone\b)?((?:\s+(?:unsigned|zerofill)\b)*)\s*(\[|ARRAY\b)?",
                   re.I)
# PostgreSQL's short names for the types its reflection names in full (SQLAlchemy's ischema_names).
_POSTGRESQL_ALIASES = {"varchar": "character varying", "char": "character", "int": "integer",
                       "int4": "integer", "int8": "bigint", "int2": "smallint", "bool": "boolean",
                       "decimal": "numeric", "float8": "double precision", "float4": "real",
                       "timestamptz": "timestamp with time zone", "timetz": "time with time zone"}


def _type(text: str, dialect: sa.engine.Dialect | None) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type that `dialect`'s reflection gives for a type written in SQL; NullType
    (a change the rules cannot judge) where it is not known."""
    names: dict[str, Any] = getattr(dialect, "ischema_names", None) or {}
    match = _TYPE.match(text)
    if not match or match.group(5):  # arrays: their element types are not compared
        return sa.types.NullType()
    name, arguments, zone, flags = match.group(1, 2, 3, 4)
    name = " ".join(name.lower().split())
    if zone:
        name = _POSTGRESQL_ALIASES.get(name, name) + " " + " ".join(zone.lower().split())
    if name not in names and getattr(dialect, "name", "") == "postgresql":
        name = _POSTGRESQL_ALIASES.get(name, name)
    kind = names.get(name)
    if kind is None:
        return sa.types.NullType()
    args = [int(a) for a in arguments.split(",")] if arguments else []
    kw: dict[str, Any] = {flag: True for flag in flags.lower().split()}  # MySQL: unsigned, zerofill
    if name.endswith(" with time zone"):
        kw["timezone"] = True
    if name.startswith(("time", "interval")) and args:  # their first argument is not the precision
        kw["precision"], args = args[0], []
    try:
        return kind(*args, **kw)
    except TypeError:  # arguments this type does not take
        return sa.types.NullType()


def _actions(text: str) -> list[str]:
    """ALTER TABLE's comma-separated actions (commas inside parentheses or quotes do not count)."""
    actions, depth, current, quote = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            actions.append(current.strip())
            current = ""
            continue
        current += char
    return [a for a in [*actions, current.strip()] if a]


def _name(table: str, schema: str | None) -> str:
    return f"{schema}.{table}" if schema else table


def _split(name: str) -> tuple[str | None, str]:
    parts = re.findall(_NAME, name)
    return (_unquote(parts[0]), _unquote(parts[1])) if len(parts) == 2 else (None, _unquote(parts[0]))


def _unquote(name: str) -> str:
    if name[:1] in "\"`[":
        return name[1:-1]
    return name.lower()
