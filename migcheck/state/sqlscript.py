"""A SQL script (a schema dump, a seed file) cut into the statements a driver runs one at a time.

SQLite decides for itself where a statement ends (`sqlite3.complete_statement`, which knows that
`CREATE TRIGGER ... BEGIN ...; END;` is one). Server drivers take one statement per call (pg8000 never
takes more, and a multi-statement string would hide which statement failed), so for them the script is
split on `;` outside quotes, comments and PostgreSQL's dollar quotes. On MySQL a `DELIMITER` line
(mysqldump writes them around triggers and routines) changes the separator as the mysql client does,
and `/*! ... */` comments are kept as statements: the server runs them. psql's `\\restrict` lines
(pg_dump 17.6+) are the client's, not SQL: they are left out.
"""

from __future__ import annotations

import re
import sqlite3
from typing import NamedTuple


class Statement(NamedTuple):
    line: int  # where it starts in the script, 1-based
    sql: str


_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_DELIMITER = re.compile(r"[ \t]*DELIMITER[ \t]+(\S+)[ \t]*(?:\r?\n|$)", re.I)
_PSQL_RESTRICT = re.compile(r"[ \t]*\\(?:un)?restrict\b[^\n]*(?:\n|$)")


def split(script: str, dialect: str) -> list[Statement]:
    """The statements of `script` for a database of `dialect` ("sqlite", "postgresql", "mysql", ...)."""
    if dialect == "sqlite":
        return _split_sqlite(script)
    return _Splitter(script, mysql=dialect in ("mysql", "mariadb")).statements()


def _split_sqlite(script: str) -> list[Statement]:
    found, pending, start = [], "", 1
    for number, line in enumerate(script.splitlines(keepends=True), 1):
        if not pending.strip():
            pending, start = "", number
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(Statement(start, pending.strip()))
            pending = ""
    if _has_code(pending):
        found.append(Statement(start, pending.strip()))  # runs, and fails saying what is incomplete
    return found


def _has_code(text: str) -> bool:
    return bool(re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.S).strip())


class _Splitter:
    def __init__(self, script: str, mysql: bool) -> None:
        self.text = script
        self.mysql = mysql
        self.found: list[Statement] = []

    def statements(self) -> list[Statement]:
        text, delimiter = self.text, ";"
        start = i = 0
        code_at: int | None = None  # where the statement's first code (not a comment) is
        while i < len(text):
            at_line_start = i == 0 or text[i - 1] == "\n"
            if at_line_start and code_at is None:
                custom = _DELIMITER.match(text, i) if self.mysql else None
                skipped = custom or _PSQL_RESTRICT.match(text, i)
                if skipped:
                    delimiter = custom.group(1) if custom else delimiter
                    i = start = skipped.end()
                    continue
            char = text[i]
            if text.startswith(delimiter, i):
                self._add(start, code_at, i)
                i = start = i + len(delimiter)
                code_at = None
                continue
            end = self._skip(i)
            if end is None:  # an ordinary character
                if not char.isspace() and code_at is None:
                    code_at = i
                i += 1
                continue
            if code_at is None and not self._comment(i):
                code_at = i
            elif code_at is None and self.mysql and text.startswith("/*!", i):
                code_at = i  # an executable comment
            i = end
        self._add(start, code_at, len(text))
        return self.found

    def _add(self, start: int, code_at: int | None, end: int) -> None:
        if code_at is not None:
            line = self.text.count("\n", 0, code_at) + 1
            self.found.append(Statement(line, self.text[start:end].strip()))

    def _comment(self, i: int) -> bool:
        return self.text.startswith(("--", "/*"), i) or (self.mysql and self.text[i] == "#")

    def _skip(self, i: int) -> int | None:
        """The end of the quoted string, identifier, comment or dollar quote starting at `i`; None
        when `i` starts none."""
        text, char = self.text, self.text[i]
        if text.startswith("--", i) and (not self.mysql or text[i + 2:i + 3] in ("", " ", "\t", "\n", "\r")):
            return _until(text, "\n", i + 2)
        if char == "#" and self.mysql:
            return _until(text, "\n", i + 1)
        if text.startswith("/*", i):
            return _until(text, "*/", i + 2)
        if char in "'\"" or (char == "`" and self.mysql):
            escape = self.mysql or (char == "'" and i > 0 and text[i - 1] in "eE"
                                    and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_")))
            return _quoted(text, i, escape)
        if char == "$" and not self.mysql and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            match = _DOLLAR.match(text, i)
            if match:
                return _until(text, match.group(0), match.end())
        return None


def _until(text: str, closing: str, start: int) -> int:
    found = text.find(closing, start)
    return len(text) if found < 0 else found + len(closing)


def _quoted(text: str, i: int, backslash: bool) -> int:
    """The end of the quoted text that starts at `i` (a doubled quote stays inside)."""
    quote, j = text[i], i + 1
    while j < len(text):
        if backslash and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if text[j + 1:j + 2] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return len(text)
