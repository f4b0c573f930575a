"""What the raw SQL given to `op.execute(...)` does to the schema, as Alembic operations.

Not a SQL parser: a recognizer for the statements that migrations write by hand and that the safety
check has rules for, turned into the `op.*` operations that do the same, so one set of rules judges
both. It covers, per statement (several may be separated by `;`):
- CREATE TABLE; DROP TABLE; RENAME TABLE (MySQL);
- CREATE [UNIQUE] INDEX [CONCURRENTLY] ... ON table; DROP INDEX [CONCURRENTLY];
- ALTER TABLE table, with each comma-separated action one of: ADD [COLUMN] (NOT NULL, DEFAULT),
  ADD [CONSTRAINT name] UNIQUE / FOREIGN KEY / CHECK (NOT VALID), DROP [COLUMN], RENAME [COLUMN]
  a TO b, RENAME TO t, ALTER [COLUMN] c SET NOT NULL / [SET DATA] TYPE, MODIFY (MySQL);
  the harmless ones (DROP NOT NULL, SET/DROP DEFAULT, VALIDATE CONSTRAINT, DROP CONSTRAINT).
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


Recognized = ops.MigrateOperation | Unchecked

_NAME = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+)'
_QUALIFIED = rf"{_NAME}(?:\s*\.\s*{_NAME})?"
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_HARMLESS = re.compile(
    r"(INSERT|UPDATE|DELETE|SELECT|WITH|SET|SHOW|EXPLAIN|ANALYZE|VACUUM|COMMENT\s+ON|GRANT|REVOKE|"
    r"CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|TYPE|EXTENSION|SEQUENCE|SCHEMA|TRIGGER|"
    r"TEMP|TEMPORARY)|BEGIN|COMMIT|PRAGMA)\b", re.I)
_CREATE_VIEW = re.compile(rf"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+|RECURSIVE\s+)?VIEW\s+"
                          rf"(?:IF\s+NOT\s+EXISTS\s+)?({_QUALIFIED})", re.I)
_DROP_VIEW = re.compile(rf"DROP\s+(?:MATERIALIZED\s+)?VIEW\s+(?:IF\s+EXISTS\s+)?({_QUALIFIED})", re.I)
_SCHEMA_CHANGE = re.compile(r"(CREATE|ALTER|DROP|RENAME|TRUNCATE|REINDEX|CLUSTER)\b", re.I)
_CREATE_TABLE = re.compile(rf"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({_QUALIFIED})", re.I)
_DROP_TABLE = re.compile(rf"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_QUALIFIED}(?:\s*,\s*{_QUALIFIED})*)", re.I)
_RENAME_TABLE = re.compile(rf"RENAME\s+TABLE\s+({_QUALIFIED})\s+TO\s+({_QUALIFIED})\s*$", re.I)
_CREATE_INDEX = re.compile(
    rf"CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_QUALIFIED}\s+)?"
    rf"ON\s+(?:ONLY\s+)?({_QUALIFIED})", re.I)
_DROP_INDEX = re.compile(rf"DROP\s+INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?({_QUALIFIED})"
                         rf"(?:\s+ON\s+({_QUALIFIED}))?", re.I)
_ALTER_TABLE = re.compile(rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_QUALIFIED})\s+(.*)$",
                          re.I | re.S)


def statements(sql: str) -> list[str]:
    """The statements in `sql`, without comments (split on `;` outside quotes)."""
    text = _COMMENTS.sub(" ", sql)
    parts = re.findall(r"(?:'[^']*'|\"[^\"]*\"|[^;'\"])+", text)
    return [" ".join(part.split()) for part in parts if part.strip()]


def recognize(sql: str) -> list[Recognized]:
    found: list[Recognized] = []
    for statement in statements(sql):
        found += _statement(statement)
    return found


def _statement(sql: str) -> list[Recognized]:
    if match := _CREATE_VIEW.match(sql):  # recorded like a table: dropping it again is fine
        schema, view = _split(match.group(1))
        return [ops.CreateTableOp(view, [], schema=schema)]
    if match := _DROP_VIEW.match(sql):  # the deployed code may read an old one: unchecked
        schema, view = _split(match.group(1))
        return [Unchecked(sql, _name(view, schema))]
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
        concurrently, name, table = match.groups()
        schema, index = _split(name)
        return [ops.DropIndexOp(index, table_name=_split(table)[1] if table else None, schema=schema,
                                postgresql_concurrently=bool(concurrently))]
    if match := _DROP_TABLE.match(sql):
        names = re.findall(_QUALIFIED, match.group(1))
        return [ops.DropTableOp(table, schema=schema) for schema, table in map(_split, names)]
    if match := _RENAME_TABLE.match(sql):
        schema, old = _split(match.group(1))
        return [ops.RenameTableOp(old, _split(match.group(2))[1], schema=schema)]
    if match := _ALTER_TABLE.match(sql):
        schema, table = _split(match.group(1))
        found: list[Recognized] = []
        for action in _actions(match.group(2)):
            operation = _action(table, schema, action)
            if operation is _IGNORED:
                continue
            found.append(operation or Unchecked(sql, _name(table, schema)))
        return found
    if _HARMLESS.match(sql) or not _SCHEMA_CHANGE.match(sql):
        return []
    return [Unchecked(sql)]


_IGNORED = ops.MigrateOperation()  # an action that locks nothing worth a rule


def _action(table: str, schema: str | None, action: str) -> ops.MigrateOperation | None:
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
        if rest_upper[:2] == ["IF", "EXISTS"]:
            rest = rest[2:]
        return ops.DropColumnOp(table, _unquote(rest[0]), schema=schema) if rest else None
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
            return ops.AlterColumnOp(table, column, schema=schema, modify_type=sa.types.NullType())
        if change == "SET NOT NULL":
            return ops.AlterColumnOp(table, column, schema=schema, modify_nullable=False)
        if change.startswith(("TYPE ", "SET DATA TYPE ")):
            return ops.AlterColumnOp(table, column, schema=schema, modify_type=sa.types.NullType())
        if change in ("DROP NOT NULL", "DROP DEFAULT") or change.startswith("SET DEFAULT "):
            return _IGNORED
        return None
    if upper[:2] == ["VALIDATE", "CONSTRAINT"]:
        return _IGNORED
    return None


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
