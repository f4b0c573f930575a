"""Reading Python source files the way Python does.

A file may declare its encoding (`# -*- coding: latin-1 -*-`) or start with a BOM; Python honours
both when it imports the file, so every reader of a user's source must too.
"""

from __future__ import annotations

import re
import tokenize

# Words of a statement in a revision that deletes rows: `DELETE FROM setting`, `op.drop_table(...)`.
DELETES = re.compile(r"\b(delete|truncate|drop_table|drop)\b", re.IGNORECASE)


def read_source(path: str) -> str:
    """The text of a Python file, decoded as the interpreter decodes it.

    Raises OSError, SyntaxError (an unknown encoding) or UnicodeDecodeError (a ValueError).
    """
    with tokenize.open(path) as file:
        return file.read()


def read_source_leniently(path: str) -> str:
    """The text of a Python file as the interpreter decodes it, else as UTF-8 with the bytes that do
    not decode replaced: Python before 3.12 runs a file whose comments hold undeclared bytes of
    another encoding (Latin-1), and its lines are still to be found. Raises OSError."""
    try:
        return read_source(path)
    except (SyntaxError, ValueError):
        with open(path, "rb") as file:
            return file.read().decode("utf-8", "replace")
