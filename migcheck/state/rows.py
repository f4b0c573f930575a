"""Rows for empty tables, generated from the reflected schema, so that migrations meet data.

Each table gets a few rows (ROWS, more than one so that uniqueness matters) whose values fit the
column's type, length and NOT NULL; the last row has NULL wherever NULL is allowed, as production
rows do. Every row differs from the others in every column whose type allows it (so primary keys,
unique constraints and unique indexes hold); booleans and enums are bounded and cap the row count
of a unique set they are in; foreign keys take the key values of existing parent rows (parents are
filled first; a self-reference or a cycle gets NULL where the column allows it). Auto-generated
keys, identity and computed columns, and columns of a type the generator does not know but that
have a server default, are left to the database. A `col IN (...)` CHECK constraint (SQLite's
non-native Enum and Boolean) supplies the values for its column, and so do the app's models where
they still map the column (the data check passes their Enum members and CHECK constraints in:
this module knows only SQLAlchemy), when the column takes those values as it is now.

A table whose rows cannot be generated (a NOT NULL column of an unknown type, a NOT NULL foreign key
to a table without rows, an insert that a CHECK constraint or a trigger refuses) stays empty: the
insert runs in a SAVEPOINT, so a refused one leaves the migration's transaction as it was.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import sqlalchemy as sa

from migcheck import compat

ROWS = 3
_UNBOUNDED = 10**9


# table -> column -> the values the app's models allow there (passed in by the data check)
Domains = dict[str, dict[str, list[Any]]]


class Skipped(NamedTuple):
    table: str
    reason: str


class Populated(NamedTuple):
    filled: dict[str, int]  # table -> rows inserted
    skipped: list[Skipped]


class _GiveUp(Exception):
    """This table's rows cannot be generated; the message says why."""


def populate(connection: sa.engine.Connection, tables: list[str], domains: Domains | None = None
             ) -> Populated:
    """Insert rows into each of these (empty) tables, parents first. `domains`: the values the
    app's models allow in a column, used where they fit the column as it is now."""
    reflected, unreflected = compat.reflect_tables(tables, sa.MetaData(), connection)
    # a table SQLAlchemy cannot reflect is left alone
    skipped = [Skipped(name, f"it cannot be reflected ({type(exc).__name__}: {exc})")
               for name, exc in unreflected.items()]
    filled: dict[str, int] = {}
    for table in _parents_first(list(reflected.values())):
        try:
            rows = _rows_for(table, connection, (domains or {}).get(table.name, {}))
        except _GiveUp as exc:
            skipped.append(Skipped(table.name, str(exc)))
            continue
        try:
            with compat.savepoint(connection):
                connection.execute(*_insert(table, rows))
        except sa.exc.DBAPIError as exc:  # a CHECK constraint, a trigger: not the migration's fault
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            skipped.append(Skipped(table.name, f"the database refused the generated rows ({reason})"))
            continue
        filled[table.name] = len(rows)
    return Populated(filled, skipped)


class Spelled(str):
    """A value as the server spells it (an INET, a range, a bit string): inserted as a cast of that
    text to the column's type, which every driver sends alike."""


def _insert(table: sa.Table, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
    """The statement (and parameters) that insert the rows: one multi-row INSERT when a value is
    Spelled, else the driver's executemany."""
    if not any(isinstance(value, Spelled) for row in rows for value in row.values()):
        return table.insert(), rows
    return (table.insert().values([
        {name: sa.cast(sa.literal(str(value)), table.columns[name].type) if isinstance(value, Spelled)
         else value for name, value in row.items()} for row in rows]),)


def _parents_first(tables: list[sa.Table]) -> list[sa.Table]:
    """Tables ordered so that a table comes after the tables its foreign keys refer to; where a
    cycle leaves no such table, the next one anyway (its references there become NULL or skip it)."""
    waiting = {t.name: t for t in tables}
    ordered: list[sa.Table] = []
    while waiting:
        ready = [t for t in waiting.values()
                 if not any(_referred(fk)[0] in waiting and _referred(fk)[0] != t.name
                            for fk in t.foreign_key_constraints)]
        for table in ready or [next(iter(waiting.values()))]:
            ordered.append(table)
            del waiting[table.name]
    return ordered


def _rows_for(table: sa.Table, connection: sa.engine.Connection, modelled: dict[str, list[Any]]
              ) -> list[dict[str, Any]]:
    columns: dict[str, Callable[[int], Any]] = {}
    cardinality: dict[str, int] = {}
    by_fk = _foreign_key_values(table, connection)
    allowed = _allowed_values(table, connection)
    for name, values in modelled.items():
        if name in table.columns:
            fitting = _fitting(values, table.columns[name], allowed.get(name))
            if fitting:
                allowed[name] = fitting
    for column in table.columns:
        if column.name in by_fk:
            values, distinct, nullable = by_fk[column.name]
            if values:
                columns[column.name] = values.__getitem__
                cardinality[column.name] = distinct
            elif nullable:
                columns[column.name] = _none
            continue
        if _database_fills(column, connection):
            continue
        if column.name in allowed:
            columns[column.name] = _cycle(allowed[column.name])
            cardinality[column.name] = len(allowed[column.name])
            continue
        made = _value_maker(column.name, column.type)
        if made is None:
            if column.server_default is not None:
                continue
            if column.nullable:
                columns[column.name] = _none
                continue
            raise _GiveUp(f"column `{column.name}` is NOT NULL and of a type the generator does not "
                          f"know ({column.type!r})")
        columns[column.name], cardinality[column.name] = made
    count = ROWS
    for unique in _unique_sets(table):
        combinations = 1
        for name in unique:
            combinations *= cardinality.get(name, _UNBOUNDED)
        count = min(count, combinations)
    if count < 1:
        raise _GiveUp("a unique key over its columns allows no row")
    # The last row has NULL wherever NULL is allowed, as production rows do: a revision that makes
    # such a column NOT NULL must backfill it first.
    may_be_null = {c.name for c in table.columns if c.nullable} if count > 1 else set()
    return [{name: None if n == count - 1 and name in may_be_null else make(n)
             for name, make in columns.items()} for n in range(count)]


def _none(n: int) -> None:
    return None


def _cycle(choices: list[Any]) -> Callable[[int], Any]:
    return lambda n: choices[n % len(choices)]


def _foreign_key_values(table: sa.Table, connection: sa.engine.Connection
                        ) -> dict[str, tuple[list[Any], int, bool]]:
    """column -> (the value of each row, from the parent rows in turn; how many distinct parent rows
    there are; whether NULL is allowed)."""
    found: dict[str, tuple[list[Any], int, bool]] = {}
    quote = connection.dialect.identifier_preparer.quote
    for fk in table.foreign_key_constraints:
        local = [c.name for c in fk.columns]
        parent, remote = _referred(fk)
        nullable = all(c.nullable for c in fk.columns)
        rows: list[tuple[Any, ...]] = []
        if parent != table.name:
            query = (f"SELECT {', '.join(quote(c) for c in remote)} FROM {quote(parent)} "
                     f"ORDER BY {', '.join(quote(c) for c in remote)}")
            try:
                with compat.savepoint(connection):  # a parent in another schema or database
                    rows = [tuple(r) for r in connection.execute(sa.text(query)).fetchall()
                            if all(v is not None for v in r)]
            except sa.exc.DBAPIError:
                rows = []
        if not rows and not nullable:
            what = "itself" if parent == table.name else f"`{parent}`, which has no rows"
            raise _GiveUp(f"its NOT NULL foreign key ({', '.join(local)}) refers to {what}")
        for position, column in enumerate(fk.columns):
            values = [_bindable(column, row[position]) for row in rows]
            found[column.name] = ([values[n % len(values)] for n in range(ROWS)] if values else [],
                           len(rows), nullable)
    return found


def _bindable(column: sa.Column[Any], value: Any) -> Any:
    """A parent's value as the child column takes it: a driver that returns uuid.UUID for a raw
    query (psycopg2 under SQLAlchemy 1.4) meets a reflected UUID column that binds strings."""
    if isinstance(value, uuid.UUID) and compat.is_uuid(column.type) and not getattr(
            column.type, "as_uuid", False):
        return str(value)
    return value


def _referred(fk: sa.ForeignKeyConstraint) -> tuple[str, list[str]]:
    """The referred table's name and columns, from the constraint's text ("table.column"): the
    referred table itself is not reflected."""
    targets = [element.target_fullname.split(".") for element in fk.elements]
    return targets[0][-2], [target[-1] for target in targets]


def _database_fills(column: sa.Column[Any], connection: sa.engine.Connection) -> bool:
    """Auto-incremented keys, identity and computed columns: the database gives their values."""
    if compat.database_generated(column):
        return True
    if not column.primary_key or len(column.table.primary_key.columns) != 1:
        return False
    if not isinstance(column.type, sa.Integer):
        return False
    if column.autoincrement is True:
        return True
    # SQLite: an INTEGER PRIMARY KEY is the rowid (reflection does not say "autoincrement").
    return (connection.dialect.name == "sqlite" and column.autoincrement == "auto"
            and type(column.type).__name__.upper() == "INTEGER")


_IN_LIST = re.compile(r"""\s*\(?\s*["`\[]?(\w+)["`\]]?\s+IN\s*\(""", re.I)
_JSON_VALID = re.compile(r"\s*\(?\s*json_valid\(`?(\w+)`?\)\s*\)?\s*", re.I)
_LITERAL = re.compile(r"\s*(?:'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?))\s*([,)])")


def _allowed_values(table: sa.Table, connection: sa.engine.Connection) -> dict[str, list[Any]]:
    """Values from `col IN (...)` CHECK constraints (SQLite's non-native Enum and Boolean) and
    `json_valid(col)` ones (MariaDB's JSON). Asked of the inspector: SQLAlchemy 1.3 does not put
    SQLite's CHECK constraints on a reflected Table."""
    try:
        texts = [c["sqltext"] for c in sa.inspect(connection).get_check_constraints(table.name)]
    except NotImplementedError:  # a dialect that does not reflect them
        texts = []
    texts += [str(c.sqltext) for c in table.constraints if isinstance(c, sa.CheckConstraint)]
    if connection.dialect.name in ("mysql", "mariadb"):
        texts += _column_checks(connection, table.name)
    allowed = {}
    for text in texts:
        found = in_list(text)
        json = _JSON_VALID.fullmatch(text)
        if json:  # MariaDB's JSON: a LONGTEXT that must hold JSON
            found = (json[1], [f'{{"n": {n + 1}}}' for n in range(ROWS)])
        if found and found[0] in table.columns:
            allowed[found[0]] = found[1]
    return allowed


def _column_checks(connection: sa.engine.Connection, table: str) -> list[str]:
    """MariaDB's column-level CHECK constraints, which reflection misses (its JSON type is a
    LONGTEXT with `CHECK (json_valid(col))`)."""
    query = sa.text("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                    " WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :name")
    try:
        with compat.savepoint(connection):
            return [str(text) for (text,) in connection.execute(query, {"name": table})]
    except sa.exc.DBAPIError:  # MySQL: no TABLE_NAME there (and its JSON type is a JSON type)
        return []


def in_list(text: str) -> tuple[str, list[Any]] | None:
    """The column and values of a `col IN (...)` CHECK constraint's text."""
    match = _IN_LIST.match(text)
    values = _literals(text, match.end()) if match else []
    return (match[1], values) if match and values else None


def _fitting(values: list[Any], column: sa.Column[Any], allowed: list[Any] | None) -> list[Any]:
    """The values a model allows that the column takes as it is now (its type, length, enum
    members, CHECK constraint)."""
    type_ = compat.stored_type(column.type)
    if allowed is None and isinstance(type_, sa.Enum):
        allowed = list(type_.enums)
    if allowed is not None:
        return [value for value in values if value in allowed]
    if isinstance(type_, (sa.String, sa.types.NullType)):
        length = getattr(type_, "length", None) or 10**9
        return [value for value in values if isinstance(value, str) and len(value) <= length]
    if isinstance(type_, sa.Integer):
        return [value for value in values if isinstance(value, int) and not isinstance(value, bool)]
    return []


def _literals(text: str, position: int) -> list[Any]:
    """The literals of an `IN (...)` list from `position` to its closing parenthesis (SQLAlchemy 1.3
    gives SQLite's CHECK text with the rest of the CREATE TABLE after it)."""
    values: list[Any] = []
    while (literal := _LITERAL.match(text, position)) is not None:
        quoted, number, end = literal.groups()
        values.append(quoted.replace("''", "'") if number is None else _number(number))
        position = literal.end()
        if end == ")":
            return values
    return []


def _number(text: str) -> int | decimal.Decimal:
    return decimal.Decimal(text) if "." in text else int(text)


def _unique_sets(table: sa.Table) -> list[list[str]]:
    sets = [[c.name for c in table.primary_key.columns]] if table.primary_key.columns else []
    sets += [[c.name for c in constraint.columns] for constraint in table.constraints
             if isinstance(constraint, sa.UniqueConstraint)]
    sets += [[c.name for c in index.columns] for index in table.indexes if index.unique]
    return sets


_EPOCH = datetime.datetime(2020, 1, 1, 12, 0, 0)


def _value_maker(name: str, type_: sa.types.TypeEngine[Any]) -> tuple[Callable[[int], Any], int] | None:
    """A function from the row number to a value of a column `name` of this type, and how many
    distinct values it has; None for a type the generator does not know."""
    type_ = compat.stored_type(type_)
    spelled = _SPELLED.get(_dialect_type(type_))
    if spelled is not None:
        return spelled(type_)
    if isinstance(type_, sa.Boolean):
        return (lambda n: n % 2 == 0), 2
    if isinstance(type_, sa.Enum):
        members = list(type_.enums)
        return (_cycle(members), len(members)) if members else None
    if isinstance(type_, sa.Integer):
        return (lambda n: n + 1), _UNBOUNDED
    if isinstance(type_, sa.Float):
        return (lambda n: n + 1.5), _UNBOUNDED
    if isinstance(type_, sa.Numeric):
        return _numeric(type_)
    if isinstance(type_, sa.DateTime):
        zone = datetime.timezone.utc if type_.timezone else None
        return (lambda n: (_EPOCH + datetime.timedelta(days=n)).replace(tzinfo=zone)), _UNBOUNDED
    if isinstance(type_, sa.Date):
        return (lambda n: _EPOCH.date() + datetime.timedelta(days=n)), _UNBOUNDED
    if isinstance(type_, sa.Time):
        return (lambda n: datetime.time(12, n % 60)), 60
    if isinstance(type_, sa.Interval) or type(type_).__name__ == "INTERVAL":  # PostgreSQL's is not one
        return (lambda n: datetime.timedelta(minutes=n + 1)), _UNBOUNDED
    if isinstance(type_, sa.JSON):
        return (lambda n: {"n": n + 1}), _UNBOUNDED
    if isinstance(type_, sa.ARRAY):
        return _array(name, type_.item_type)
    if compat.is_uuid(type_):
        as_uuid = getattr(type_, "as_uuid", False)
        return (lambda n: uuid.UUID(int=n + 1) if as_uuid else str(uuid.UUID(int=n + 1))), _UNBOUNDED
    if isinstance(type_, sa.String):
        return _text(name, type_.length), _UNBOUNDED
    if isinstance(type_, sa.LargeBinary):
        return (lambda n: f"{n + 1}".encode()), _UNBOUNDED
    if isinstance(type_, sa.types.NullType):  # SQLite: a type name it does not know stores anything
        return _text(name, None), _UNBOUNDED
    return None


def _array(name: str, item_type: sa.types.TypeEngine[Any]) -> tuple[Callable[[int], Any], int] | None:
    """One-element arrays of the item type's values: a list, or PostgreSQL's text for an array of
    values the server spells."""
    made = _value_maker(name, item_type)
    if made is None:
        return None
    item, distinct = made

    def make(n: int) -> Any:
        value = item(n)
        if isinstance(value, Spelled):
            return Spelled('{"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"}')
        return [value]
    return make, distinct


def _bits(type_: Any) -> tuple[Callable[[int], Any], int]:
    """BIT(n) has exactly n bits; BIT VARYING(n) at most n."""
    width = min(type_.length or 30, 30)
    if getattr(type_, "varying", False):
        return (lambda n: Spelled(format(n % 2**width, "b"))), 2**width
    return (lambda n: Spelled(format(n % 2**width, f"0{width}b"))), 2**width


def _spelled(make: Callable[[int], str]) -> Callable[[Any], tuple[Callable[[int], Any], int]]:
    return lambda type_: ((lambda n: Spelled(make(n))), _UNBOUNDED)


def _day(n: int) -> str:
    return (_EPOCH.date() + datetime.timedelta(days=n)).isoformat()


_NUMBERS = _spelled(lambda n: f"[{n + 1},{n + 2})")
_DAYS = _spelled(lambda n: f"[{_day(n)},{_day(n + 1)})")
_TIMES = _spelled(lambda n: f"[{_day(n)} 12:00,{_day(n + 1)} 12:00)")

# Types SQLAlchemy reflects whose values are best given as the server spells them, by type name.
def _dialect_type(type_: sa.types.TypeEngine[Any]) -> str:
    """`postgresql.INET`, `mysql.YEAR`: a dialect's own type, by name (the same in every version)."""
    module = type(type_).__module__.split(".")
    return f"{module[2]}.{type(type_).__name__}" if module[:2] == ["sqlalchemy", "dialects"] else ""


_SPELLED: dict[str, Callable[[Any], tuple[Callable[[int], Any], int] | None]] = {
    "postgresql.INET": _spelled(lambda n: f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"),
    "postgresql.CIDR": _spelled(lambda n: f"10.{n // 256 % 256}.{n % 256}.0/24"),
    "postgresql.MACADDR": _spelled(lambda n: "08:00:2b:" + ":".join(f"{n >> s & 255:02x}"
                                                                    for s in (16, 8, 0))),
    "postgresql.MONEY": _spelled(lambda n: f"{n + 1}.00"),
    "postgresql.TSVECTOR": _spelled(lambda n: f"word{n + 1}"),
    "postgresql.BIT": _bits,
    "postgresql.INT4RANGE": _NUMBERS, "postgresql.INT8RANGE": _NUMBERS, "postgresql.NUMRANGE": _NUMBERS,
    "postgresql.DATERANGE": _DAYS, "postgresql.TSRANGE": _TIMES, "postgresql.TSTZRANGE": _TIMES,
    # MySQL / MariaDB
    "mysql.YEAR": lambda type_: ((lambda n: 2001 + n % 150), 150),
    "mysql.SET": lambda type_: ((_cycle(list(type_.values)), len(type_.values)) if type_.values else None),
}


def _numeric(type_: sa.Numeric[Any]) -> tuple[Callable[[int], Any], int] | None:
    scale = type_.scale or 0
    whole = None if type_.precision is None else type_.precision - scale
    if whole is None or whole >= len(str(ROWS)):
        return (lambda n: decimal.Decimal(n + 1)), _UNBOUNDED
    if scale >= len(str(ROWS)):
        return (lambda n: decimal.Decimal(n + 1).scaleb(-scale)), _UNBOUNDED
    return None


def _text(name: str, length: int | None) -> Callable[[int], str]:
    """`name-1`, `name-2`, ...: distinct, and cut to the column's length (keeping the number) if needed."""
    def make(n: int) -> str:
        text = f"{name}-{n + 1}"
        return text if length is None or len(text) <= length else text[-length:]
    return make
