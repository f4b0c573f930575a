"""Reading Python source files the way Python does.

A file may declare its encoding (`# -*- coding: latin-1 -*-`) or start with a BOM; Python honours
both when it imports the file, so every reader of a user's source must too.
"""

from __future__ import annotations

import tokenize


def read_source(path: str) -> str:
    """The text of a Python file, decoded as the interpreter decodes it.

    Raises OSError, SyntaxError (an unknown encoding) or UnicodeDecodeError (a ValueError).
    """
    with tokenize.open(path) as file:
        return file.read()
