"""Report formats: each module renders a Run for one audience with `render(run, ...) -> str`."""

from __future__ import annotations

import os
from pathlib import Path

FORMATS = ("text", "json", "github", "junit", "sarif")


def repository_root(start: str | None = None) -> Path:
    """The enclosing git work tree (what CI services resolve paths against), else the directory."""
    here = Path(start or os.getcwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / ".git").exists()), here)


def repository_path(path: str, root: Path) -> str:
    """A finding's path relative to the repository root, with forward slashes."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix()
