"""Sections of docs/benchmarks.md that one bench script owns, between `<!-- NAME: start -->` and
`<!-- NAME: end -->`: each script rewrites its own, and bench/run.py keeps them all."""

from __future__ import annotations

import re
from pathlib import Path

ANY = re.compile(r"<!-- ([\w-]+): start -->.*?<!-- \1: end -->", re.S)


def marked(name: str, body: str) -> str:
    return f"<!-- {name}: start -->\n{body.strip(chr(10))}\n<!-- {name}: end -->"


def write(path: Path, name: str, body: str) -> None:
    """Replace the section `name` in `path` (or append it) with `body`."""
    text = path.read_text() if path.exists() else ""
    section = marked(name, body)
    pattern = re.compile(re.escape(f"<!-- {name}: start -->") + ".*?" + re.escape(f"<!-- {name}: end -->"),
                         re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def kept(path: Path) -> str:
    """Every marked section of `path`, for a script that rewrites the rest of the file."""
    old = path.read_text() if path.exists() else ""
    return "".join(f"\n{match.group(0)}\n" for match in ANY.finditer(old))
