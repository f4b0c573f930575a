"""`[tool.migcheck]` in pyproject.toml: a project's defaults for the command-line options.

The nearest pyproject.toml with a `[tool.migcheck]` table, from the working directory up to the
root of its git work tree. Relative paths in it are relative to that file. A key or value migcheck
does not understand stops the run (exit 2) with the key named, rather than being silently ignored.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from migcheck.checks import CHECKS, TARGETS
from migcheck.errors import UsageError
from migcheck.report import FORMATS
from migcheck.suppress import parse_ignore

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


class Setting(NamedTuple):
    kind: str  # "str", "path", "start", "dirs", "names", "patterns", "bool" or "choice"
    choices: tuple[str, ...] = ()


# Each key is also the argparse dest of the option it sets (`db_url` -> --db-url).
SETTINGS = {
    "app": Setting("str"),
    "directory": Setting("path"),
    "select": Setting("names", CHECKS),
    "skip": Setting("names", CHECKS),
    "source": Setting("dirs"),
    "db_url": Setting("str"),
    "no_server_defaults": Setting("bool"),
    "no_cache": Setting("bool"),
    "reupgrade": Setting("bool"),
    "since": Setting("str"),
    "git_base": Setting("str"),
    "target": Setting("choice", TARGETS),
    "format": Setting("choice", FORMATS),
    "output": Setting("path"),
    "color": Setting("choice", ("auto", "always", "never")),
    "ignore": Setting("patterns"),
    "baseline": Setting("path"),
    "start_from": Setting("start"),
}

_CALLABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def is_callable(value: str) -> bool:
    """A starting schema given as `module:function` rather than a path (a file by that name wins)."""
    return bool(_CALLABLE.fullmatch(value)) and not os.path.exists(value)


class Config(NamedTuple):
    path: Path | None  # the pyproject.toml the values came from
    values: dict[str, Any]  # validated, paths made absolute


def find(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest pyproject.toml that has a [tool.migcheck] table, and that table."""
    here = start.resolve()
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            tool = _read(candidate).get("tool")
            table = tool.get("migcheck") if isinstance(tool, dict) else None
            if table is not None:
                if not isinstance(table, dict):
                    raise UsageError(f"{candidate}: [tool.migcheck] must be a table.")
                return candidate, table
        if (directory / ".git").exists():  # the top of the project
            return None
    return None


def load(start: Path | None = None) -> Config:
    found = find(start or Path.cwd())
    if found is None:
        return Config(None, {})
    path, table = found
    values = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        setting = SETTINGS.get(key)
        if setting is None:
            raise UsageError(f"{path}: [tool.migcheck] has an unknown key {raw_key!r}. Known keys: "
                             f"{', '.join(SETTINGS)}.")
        try:
            values[key] = _validate(setting, value, path.parent)
        except ValueError as exc:
            raise UsageError(f"{path}: [tool.migcheck] {raw_key}: {exc}.") from None
    return Config(path, values)


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"Could not read {path}: {exc}.") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        raise UsageError(f"Could not read {path}: it is not UTF-8, which TOML files must be ({exc}). "
                         "Save it as UTF-8.") from exc


def _validate(setting: Setting, value: Any, base: Path) -> Any:
    kind = setting.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if kind in ("str", "path", "start", "choice"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a non-empty string, got {value!r}")
        if kind == "choice" and value not in setting.choices:
            raise ValueError(f"expected one of {', '.join(setting.choices)}, got {value!r}")
        if kind == "start" and not is_callable(value):
            return os.fspath(base / value)  # `{dialect}` stays in it, filled in once the run knows
        return os.fspath(base / value) if kind == "path" else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    if kind == "names":
        unknown = [v for v in value if v not in setting.choices]
        if unknown:
            raise ValueError(f"unknown check {', '.join(map(repr, unknown))} (choose from "
                             f"{', '.join(setting.choices)})")
    if kind == "patterns":
        for pattern in value:
            parse_ignore(pattern)  # its ValueError names the entry
    if kind == "dirs":
        missing = [v for v in value if not (base / v).is_dir()]
        if missing:
            raise ValueError(f"no such directory {', '.join(map(repr, missing))} (relative to {base})")
        return [os.fspath(base / v) for v in value]
    return list(value)
