"""The migrated scratch database, kept between runs so that a run after a model edit is fast.

An entry is the scratch database(s) at the heads of the history, plus what the walk to those heads
reported (round-trip findings). It is keyed on the content of every revision file up to those heads
(a chain of hashes, so editing an old revision invalidates every entry built on it), env.py,
alembic.ini, the Migrate(...) options and the library versions. A run restores the entry that covers
the longest unchanged stretch of the history and walks on from there: only new or changed revisions
are upgraded and round-tripped. Entries are verified by hash before use; a bad one is deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from migcheck import __version__
from migcheck.checks.graph import parents
from migcheck.findings import Finding
from migcheck.project import Project

FORMAT = 1
KEEP = 3  # entries kept per project environment
_LIBRARIES = ("alembic", "sqlalchemy", "flask-migrate", "flask-sqlalchemy")


class Cache(NamedTuple):
    directory: Path  # this project environment's entries
    chain: dict[str, str]  # revision -> hash of its file and its ancestors' files


class Restored(NamedTuple):
    revisions: frozenset[str]  # already upgraded (and round-tripped, when asked for)
    findings: list[Finding]  # what the walk over them reported when the entry was made
    created: list[tuple[str | None, str, str]] = []  # what their in-scope revisions created (safety)


class Safety(NamedTuple):
    """What the safety findings of an entry depend on besides the files: which revisions were in
    scope (not deployed) and the deploy target. An entry holding in-scope revisions is used only
    if it was made with the same scope over its revisions and the same target, so the findings of
    in-scope revisions are never lost to the cache; otherwise they are walked again."""
    scope: frozenset[str]
    target: str
    created: list[tuple[str | None, str, str]] = []  # what in-scope revisions created, for save()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(os.environ.get("MIGCHECK_CACHE_DIR") or os.path.join(base, "migcheck"))


def usable(project: Project) -> bool:
    """Only SQLite scratch databases are cached, and only for a history with unique ids."""
    return project.scratch.server is None and len({s.revision for s in project.scripts}) == len(
        project.scripts)


def open_cache(project: Project) -> Cache:
    """Compute the keys before env.py runs: Flask-Migrate's env.py adds to the Migrate options."""
    return Cache(_directory(project), _chain_keys(project))


def restore(cache: Cache, project: Project, roundtrip: bool, safety: Safety | None = None
            ) -> Restored | None:
    """Put the best cached database into the scratch area; None when there is none to trust."""
    known = set(cache.chain.values())
    candidates = []
    for manifest_path in cache.directory.glob("*/manifest.json"):
        try:
            manifest = json.loads(manifest_path.read_text())
            usable_entry = (manifest["format"] == FORMAT and (manifest["roundtrip"] or not roundtrip)
                            and set(manifest["heads"].values()) <= known
                            and _same_safety(manifest, safety))
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(manifest_path.parent, ignore_errors=True)
            continue
        if usable_entry:
            candidates.append((len(manifest["revisions"]), manifest_path.parent, manifest))
    for _, entry, manifest in sorted(candidates, key=lambda c: c[0], reverse=True):
        if _copy_in(project, entry, manifest["files"]):
            os.utime(entry)  # recently used: evicted last
            findings = [Finding(**{**f, "details": f.get("details") or {}})
                        for f in manifest["findings"] if _wanted(f, roundtrip, safety)]
            saved = manifest.get("safety") or {}
            created = [(bind, kind, name) for bind, kind, name in saved.get("created", ())] \
                if safety and safety.scope & set(manifest["revisions"]) else []
            return Restored(frozenset(manifest["revisions"]), findings, created)
        shutil.rmtree(entry, ignore_errors=True)  # corrupted: never trusted, rebuilt by this run
    return None


def _same_safety(manifest: dict[str, Any], safety: Safety | None) -> bool:
    if safety is None:
        return True
    inside = sorted(safety.scope & set(manifest["revisions"]))
    saved = manifest.get("safety") or {}
    return not inside or (saved.get("scope") == inside and saved.get("target") == safety.target)


def _wanted(finding: dict[str, Any], roundtrip: bool, safety: Safety | None) -> bool:
    if finding["check"] == "roundtrip":
        return roundtrip
    if finding["check"] == "safety":
        return safety is not None and (finding.get("details") or {}).get("revision") in safety.scope
    return True


def save(cache: Cache, project: Project, findings: list[Finding], roundtrip: bool,
         safety: Safety | None = None) -> None:
    """Keep the scratch database, now at the heads, with what the walk found on the way."""
    chain, directory = cache.chain, cache.directory
    heads = {rev: chain[rev] for rev in project.script.get_heads()}
    entry = directory / _digest(sorted(heads.values()))[:20]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".new-", dir=directory))
        try:
            files = {}
            for bind in project.binds:
                path = project.scratch.path_for(bind)
                with sqlite3.connect(path) as source, sqlite3.connect(staging / path.name) as target:
                    source.backup(target)  # consistent even while the app's engines hold it open
                files[path.name] = _file_digest(staging / path.name)
            manifest = {"format": FORMAT, "roundtrip": roundtrip, "heads": heads,
                        "revisions": sorted(chain), "files": files,
                        "safety": safety and {"scope": sorted(safety.scope & set(chain)),
                                              "target": safety.target,
                                              "created": sorted(safety.created, key=repr)},
                        "findings": [f._asdict() for f in findings
                                     if f.rule != "roundtrip-irreversible"]}
            (staging / "manifest.json").write_text(json.dumps(manifest, default=str))
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _evict(directory)
    except (OSError, sqlite3.Error) as exc:  # a cache that cannot be written only costs speed
        print(f"migcheck: warning: could not write the cache in {directory}: {exc}", file=sys.stderr)


def _copy_in(project: Project, entry: Path, files: dict[str, str]) -> bool:
    targets = [project.scratch.path_for(bind) for bind in project.binds]
    if set(files) != {target.name for target in targets}:
        return False
    for name, expected in files.items():
        cached = entry / name
        if not cached.is_file() or _file_digest(cached) != expected:
            return False
    for target in targets:
        shutil.copyfile(entry / target.name, target)
    return True


def _directory(project: Project) -> Path:
    """One directory per project environment: env.py, alembic.ini, Migrate options, versions."""
    parts = [__version__, sqlite3.sqlite_version, repr(sorted(map(str, project.binds)))]
    parts += [metadata.version(name) for name in _LIBRARIES]
    for name in ("env.py", "alembic.ini"):
        path = project.directory / name
        parts.append(_file_digest(path) if path.is_file() else "")
    parts += [f"{key}={_stable(value)}" for key, value in sorted(project.migrate_args.items())]
    return cache_root() / _digest(parts)[:20]


def _chain_keys(project: Project) -> dict[str, str]:
    """revision -> a hash of its file and of its ancestors' files."""
    keys: dict[str, str] = {}
    for script in reversed(list(project.script.walk_revisions())):  # parents first
        keys[script.revision] = _digest([_file_digest(Path(script.path)),
                                         *sorted(keys[p] for p in parents(script))])
    return keys


def _stable(value: Any) -> str:
    """A Migrate(...) option as text that is the same in every run (no object addresses)."""
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return repr(value)


def _evict(directory: Path) -> None:
    entries = sorted((p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
