"""Where the scratch database's dialect shapes what the checks can tell.

SQLite cannot store some things the models ask for (time zones, comments, enum types) and Alembic
does not compare others there (CHECK constraints), so a SQLite run says so once per model object
instead of passing silently. Migrations written for PostgreSQL or MySQL fail on SQLite for that
reason alone, which the upgrade check's hint should say. MySQL reports `now()` back as
`current_timestamp()`, which Alembic would take for a changed server default.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from migcheck import compat
from migcheck.findings import Finding

_VERIFY = "verify with --db-url on your production database"
_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "mssql": "SQL Server",
          "oracle": "Oracle"}
_EXAMPLE_URLS = {"postgresql": "postgresql://USER@HOST:5432/", "mysql": "mysql+pymysql://USER@HOST:3306/"}
# SQLite's errors for another database's types, functions and `::` casts
# (SQLAlchemy 1.3 names the type's class: "of type <class 'sqlalchemy.dialects.postgresql.base.UUID'>".)
_FOREIGN = re.compile(r"can't render element of type (?:<class '(?:\w+\.)*)?(?P<type>\w+)|"
                      r"(?:unknown|no such) function: (?P<function>\w+)|(?P<cast>unrecognized token: \":\")|"
                      r"near \"(?P<near>[^\"]+)\": syntax error")
_FUNCTIONS = {"gen_random_uuid": "postgresql", "uuid_generate_v4": "postgresql", "to_tsvector": "postgresql",
              "jsonb_build_object": "postgresql", "uuid": "mysql", "unix_timestamp": "mysql"}
_NOW = re.compile(r"\(?(?:now|current_timestamp|localtimestamp|localtime)(?:\((\d*)\))?\)?")


Locate = Callable[[str, str | None], tuple[str, int] | None]  # (table, column) -> model file:line


def sqlite_blind_spots(metadatas: Iterable[sa.MetaData], locate: Locate) -> list[Finding]:
    """Warnings for model features a SQLite scratch database cannot verify, one per object."""
    findings = []

    def warn(rule: str, table: sa.Table, column: sa.Column[Any] | None, what: str, why: str) -> None:
        where = locate(table.name, column.name if column is not None else None)
        findings.append(Finding(
            "drift", f"drift-sqlite-{rule}", "warning",
            f"{what}: {why}, so migcheck on SQLite cannot tell whether the migrations match; {_VERIFY}",
            where[0] if where else None, where[1] if where else None,
            "run migcheck --db-url postgresql://… (or mysql+pymysql://…) against a server of the "
            "type you deploy on, e.g. in CI",
            {"table": table.name, "column": column.name if column is not None else None},
        ))

    for metadata in metadatas:
        for table in metadata.sorted_tables:
            if table.comment:
                warn("comment", table, None, f"table `{table.name}` has a comment",
                     "SQLite keeps no comments")
            for column in table.columns:
                name = f"column `{table.name}.{column.name}`"
                type_ = compat.stored_type(column.type)
                if isinstance(type_, sa.DateTime) and type_.timezone:
                    warn("timezone", table, column, f"{name} is a time-zone-aware DateTime",
                         "SQLite has no time zone type")
                if isinstance(type_, sa.Enum):
                    warn("enum", table, column, f"{name} is an Enum ({', '.join(type_.enums)})",
                         "SQLite stores it as VARCHAR, where changed members go unseen")
                if column.comment:
                    warn("comment", table, column, f"{name} has a comment", "SQLite keeps no comments")
            checks = [(c, None) for c in table.constraints] + [
                (c, column) for column in table.columns for c in column.constraints]
            for constraint, on_column in checks:
                if isinstance(constraint, sa.CheckConstraint) and not constraint._type_bound:
                    label = f" `{constraint.name}`" if isinstance(constraint.name, str) else ""
                    warn("check", table, on_column,
                         f"CHECK constraint{label} on `{table.name}` ({constraint.sqltext})",
                         "Alembic does not compare CHECK constraints, and SQLite does not run their "
                         "SQL as your database does")
    return findings


def compare_type(context: MigrationContext, inspected_column: sa.Column[Any], metadata_column: sa.Column[Any],
                 inspected_type: sa.types.TypeEngine[Any], metadata_type: sa.types.TypeEngine[Any]
                 ) -> bool | None:
    """Alembic's type comparison (`compare_type=True`), plus the members of a MySQL/MariaDB ENUM,
    which older Alembic releases (1.7, 1.8, measured) do not compare: a member added to the model
    is drift on every stack. It applies where env.py and `Migrate(...)` set no `compare_type`."""
    if context.dialect.name in ("mysql", "mariadb") and isinstance(inspected_type, sa.Enum) \
            and isinstance(metadata_type, sa.Enum):
        return set(inspected_type.enums) != set(metadata_type.enums)
    return None  # Alembic's own comparison decides


def server_default_comparison(dialect: str) -> Any:
    """What drift gives Alembic as `compare_server_default`: on PostgreSQL Alembic's own comparison
    (`True`), because Alembic hands a callable the text of the reflected default and fails on an
    identity column, whose reflected default is an `Identity`; elsewhere `compare_server_default`."""
    return True if dialect == "postgresql" else compare_server_default


def same_server_default(inspected: str, metadata: str) -> bool:
    """Whether Alembic's "changed" server default is the same SQL: PostgreSQL reflects
    `nextval('seq')` as `nextval('seq'::regclass)`, and Alembic (before 1.9 always, later when
    the model spells the cast) compares the two by running both, whose values always differ."""
    def bare(text: str) -> str:
        return re.sub(r"::regclass\b", "", "".join(text.split()))

    return bare(inspected) == bare(metadata)


def compare_server_default(context: MigrationContext, inspected_column: sa.Column[Any],
                           metadata_column: sa.Column[Any], inspected_default: str | None,
                           metadata_default: Any, rendered_metadata_default: str | None) -> bool | None:
    """Alembic's comparison, except that MySQL's spellings of "now" are one default, not two,
    and SQLite's is the same on every Alembic release."""
    if context.dialect.name == "sqlite":
        return compat.sqlite_server_default_differs(inspected_default, rendered_metadata_default)
    if context.dialect.name in ("mysql", "mariadb") and inspected_default and rendered_metadata_default:
        inspected = _NOW.fullmatch(inspected_default.strip().lower())
        rendered = _NOW.fullmatch(rendered_metadata_default.strip().lower())
        if inspected and rendered and (inspected.group(1) or "") == (rendered.group(1) or ""):
            return False
    return None  # Alembic's own comparison decides


class Foreign(NamedTuple):
    """What a revision uses that SQLite cannot run, and the database it is written for."""
    what: str  # "JSONB", "the function gen_random_uuid()", "`::` casts", ...
    spelled: str  # as a sentence says it: "the type JSONB"
    database: str  # "PostgreSQL", "MySQL/MariaDB", "another database"
    url: str  # an example --db-url for it
    named: bool  # the database is known (from the revision's imports or the feature)


def another_database(exc: BaseException, revision: ModuleType | None) -> Foreign | None:
    """What a revision that fails on SQLite uses because it is written for another database."""
    match = _FOREIGN.search(str(exc))
    if match is None:
        return None
    used = _dialects_in(revision)
    if match["type"]:
        what = match["type"]
        used = [d for d in used if hasattr(_dialect_module(d), match["type"])] or [
            d for d in ("postgresql", "mysql") if hasattr(_dialect_module(d), match["type"])] or used
    elif match["function"]:
        what = f"the function {match['function']}()"
        used = used or [d for d in [_FUNCTIONS.get(match["function"].lower())] if d]
    elif match["cast"]:
        cast = re.search(r"::(\w+)", str(getattr(exc, "statement", "") or ""))
        what = f"`::{cast[1]}` casts" if cast else "`::` casts"
        used = ["postgresql"]
    elif used:  # a plain syntax error is only blamed on the dialect a revision visibly uses
        what = f"the SQL near {match['near']!r}"
    else:
        return None
    database = " or ".join(_NAMES.get(d, d) for d in used) or "another database"
    url = _EXAMPLE_URLS.get(used[0] if used else "", "postgresql://USER@HOST:5432/")
    return Foreign(what, f"the type {what}" if match["type"] else what, database, url, bool(used))


def written_for_another_database(exc: BaseException, revision: ModuleType | None) -> str | None:
    """The upgrade hint for a revision that fails on SQLite because it is written for another database."""
    foreign = another_database(exc, revision)
    if foreign is None:
        return None
    server = f"a {foreign.database} server" if foreign.named else "a server of the type you deploy on"
    return (f"this revision needs {foreign.database}: SQLite cannot run {foreign.spelled}. Run migcheck "
            f"against {server} with --db-url (e.g. --db-url {foreign.url})")


def _dialects_in(module: ModuleType | None) -> list[str]:
    """The dialects whose types a revision file imports (`from sqlalchemy.dialects import postgresql`)."""
    found = set()
    for value in vars(module).values() if module is not None else ():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", "")
        match = re.match(r"sqlalchemy\.dialects\.(\w+)", name or "")
        if match and match[1] != "sqlite":
            found.add("mysql" if match[1] == "mariadb" else match[1])
    return sorted(found)


def _dialect_module(name: str) -> ModuleType:
    return importlib.import_module(f"sqlalchemy.dialects.{name}")


# What each database says when a statement names a table (or, on PostgreSQL, any relation: an index,
# a sequence) that does not exist.
_MISSING_TABLE = re.compile(
    r"no such table: (?:\w+\.)?(?P<sqlite>[^\s,]+)|"  # SQLite
    # PostgreSQL; not `constraint "c" of relation "t" does not exist` (or column): the table is there
    r"(?<!of )(?:relation|table) \"(?:[^\"]+\.)?(?P<postgresql>[^\"]+)\" does not exist|"
    # MySQL/MariaDB: 1146, 1051
    r"(?:Table|Unknown table) '(?:[^'.]+\.)?(?P<mysql>[^']+)'(?: doesn't exist)?")


# MySQL/MariaDB refuse a foreign key to a missing table without naming it (errno 150 of error 1005)
_BAD_FOREIGN_KEY = re.compile(r"errno: 150\b|Failed to open the referenced table")
_REFERENCES = re.compile(r"\bREFERENCES\s+(?:[`\"]?\w+[`\"]?\.)?[`\"]?(\w+)[`\"]?", re.IGNORECASE)


def missing_table(exc: BaseException) -> str | None:
    """The table a failed statement (or a batch operation's reflection) found missing, if that is
    why it failed."""
    if isinstance(exc, sa.exc.NoSuchTableError):  # op.batch_alter_table reflects the table first
        return str(exc).rpartition(".")[2] or None
    if not isinstance(exc, sa.exc.DBAPIError) or exc.orig is None:
        return None
    match = _MISSING_TABLE.search(str(exc.orig))
    return next((name for name in match.groups() if name), None) if match else None


def referenced_tables(exc: BaseException) -> list[str]:
    """The tables a foreign key that MySQL/MariaDB refused refers to (the error does not say which
    one is missing, so the caller decides)."""
    if not isinstance(exc, sa.exc.DBAPIError) or not _BAD_FOREIGN_KEY.search(str(exc.orig)):
        return []
    return _REFERENCES.findall(str(exc.statement or ""))
