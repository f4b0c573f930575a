"""The migrated scratch database, kept between runs so that a run after a model edit is fast.

An entry is the scratch database(s) at the heads of the history, plus what the walk to those heads
reported (round-trip and data findings) and how it was made: whether it round-tripped, which revisions
it ran with generated rows (the data check), and whether the database holds such rows. It is keyed on
the content of every revision file up to those heads and of every project module each of them imports,
transitively (a chain of hashes, so editing an old revision, or a model it imports, invalidates every
entry built on it); on env.py and the project modules it imports, alembic.ini, the Migrate(...) options
and the library versions; and on the starting schema (`--start-from`): its SQL file, or the module of
its callable and the project modules that imports. And an entry serves only while every project file
the walk that made it opened is unchanged (reads.py: data files read by any means, from any module). A
revision file that reads state no file content keys (the app's configuration, the environment: see
project/dependencies.py) is never kept, nor anything above it. A run restores the entry that covers the
longest unchanged stretch of the history and walks on from there: only new or changed revisions are
upgraded and round-tripped. Entries are verified by hash before use; a bad one is deleted.

With `--db-url` on a PostgreSQL or MariaDB server (not a database given in the URL, where migcheck
creates none), an entry's databases are copies on that server (databases/templates.py), which the
manifest here names; the server's identity and version are part of the environment's key. An
entry whose database vanished is deleted, never trusted. MySQL and MariaDB < 10.5: not cached.
Entries go when KEEP newer ones exist in their environment, or when no run used them for
templates.AGE. `migcheck --clear-cache` removes the whole local cache and, given a server,
migcheck's cache databases on it (`clear`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic.script import Script

from migcheck import __version__, kept, rules
from migcheck.checks.data import ROW_RULES
from migcheck.checks.graph import parents
from migcheck.databases import guard, templates
from migcheck.databases.servers import Server
from migcheck.findings import SEVERITIES, Finding
from migcheck.project import Project
from migcheck.project.dependencies import Dependencies, Reads, find_dependencies
from migcheck.streams import warn
from migcheck.usercode import relative

FORMAT = 6  # 6: which way the round trip came back from each downgrade (--reupgrade)
KEEP = 3  # entries kept per project environment
_LIBRARIES = ("alembic", "sqlalchemy", "flask-migrate", "flask-sqlalchemy")


class Cache(NamedTuple):
    directory: Path  # this project environment's entries
    chain: dict[str, str]  # revision -> hash of its files and its ancestors'; only those kept
    # the first revision (parents first) that reads state no key covers, and where it reads it
    unkeyed: tuple[Script, Reads] | None = None


class Restored(NamedTuple):
    revisions: frozenset[str]  # already upgraded (and round-tripped, when asked for)
    findings: list[Finding]  # what the walk over them reported when the entry was made
    data: frozenset[str]  # the revisions it ran with generated rows in the tables (data check)
    rows: bool  # the database holds rows that the data check generated
    created: list[tuple[str | None, str, str]] = []  # what their in-scope revisions created (safety)
    reads: dict[str, str] = {}  # the project files the walks over them opened -> their hashes


class Safety(NamedTuple):
    """What the safety findings of an entry depend on besides the files: which revisions were in
    scope (not deployed) and the deploy target. An entry holding in-scope revisions is used only
    if it was made with the same scope over its revisions and the same target, so the findings of
    in-scope revisions are never lost to the cache; otherwise they are walked again."""
    scope: frozenset[str]
    target: str


def cache_root() -> Path | None:
    """MIGCHECK_CACHE_DIR, else $XDG_CACHE_HOME/migcheck, else ~/.cache/migcheck; None if there is
    no home directory (HOME unset and a uid without a passwd entry, as in some containers)."""
    if os.environ.get("MIGCHECK_CACHE_DIR"):
        return Path(os.environ["MIGCHECK_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"], "migcheck")
    try:
        return Path.home() / ".cache" / "migcheck"
    except (RuntimeError, KeyError, OSError):
        return None


def usable(project: Project) -> bool:
    """SQLite, PostgreSQL and MariaDB scratch databases are cached (templates.supported), and only for
    a history with unique ids."""
    server = project.scratch.server
    return (server is None or templates.supported(server)) and len(
        {s.revision for s in project.scripts}) == len(project.scripts)


def open_cache(project: Project) -> Cache | None:
    """Compute the keys before env.py runs: Flask-Migrate's env.py adds to the Migrate options.

    None, with a warning, when there is nowhere to keep a cache: the run goes on without one.
    """
    root = cache_root()
    if root is None:
        warn("no cache: cannot find a home directory for ~/.cache/migcheck (HOME is not set); set "
              "MIGCHECK_CACHE_DIR to keep one")
        return None
    env = os.fspath(project.directory / "env.py")
    start_files = project.start.files() if project.start else []
    # the files' scans are kept between runs, per migrations directory and Python version
    scans = root / "scans" / (_digest([__version__, sys.version, os.path.realpath(project.directory)])[:20]
                              + ".json")
    dependencies = find_dependencies([env, *(s.path for s in project.scripts), *start_files], scans)
    digests = _Digests()
    imported = [digests.of_files(dependencies[env].files)]
    if project.start is not None:  # the schema the walk starts from: its file, or the callable's code
        if any(dependencies[path].opaque for path in start_files):
            return None  # it reads state no file content keys: never kept, as such a revision
        imported += [project.start.kind, project.start.source,
                     *(digests.of_files(dependencies[path].files | {path}) for path in start_files)]
    return Cache(_directory(root, project, imported), *_chain_keys(project, dependencies, digests))


def restore(cache: Cache, project: Project, roundtrip: bool, with_rows: frozenset[str],
            safety: Safety | None = None) -> Restored | None:
    """Put the best cached database into the scratch area; None when there is none to trust.

    With the data check (`with_rows`: its revisions), an entry serves only if it ran exactly those
    of them it holds with rows; without it, only an entry whose database holds no generated rows serves.
    With the safety check, only an entry made with the same scope and target serves (_same_safety)."""
    try:
        return _restore(cache, project, roundtrip, with_rows, safety)
    except (OSError, sa.exc.SQLAlchemyError) as exc:  # an unreadable cache only costs speed
        warn(f"could not read the cache in {cache.directory}: {exc}")
        return None


def _restore(cache: Cache, project: Project, roundtrip: bool, with_rows: frozenset[str],
             safety: Safety | None) -> Restored | None:
    known = set(cache.chain.values())
    candidates = []
    for entry in _entries(cache.directory):
        manifest = _load_manifest(entry / "manifest.json")
        if manifest is None:
            shutil.rmtree(entry, ignore_errors=True)  # never trusted; this run makes a new one
        elif ((manifest["roundtrip"] or not roundtrip) and set(manifest["heads"].values()) <= known
              # a re-upgrade finds what a rollback cannot: each run gets its own mode's findings
              and (not roundtrip or manifest["reupgrade"] == project.options.reupgrade)
              # the data check's revisions among its own are exactly those it ran with rows
              and (set(manifest["data"]) == set(manifest["revisions"]) & with_rows if with_rows
                   else not manifest["rows"])
              and _same_safety(manifest, safety) and _unchanged(manifest["reads"])):
            candidates.append((len(manifest["revisions"]), entry, manifest))
    for _, entry, manifest in sorted(candidates, key=lambda c: c[0], reverse=True):
        if project.scratch.server is not None:
            restored = _restore_databases(project.scratch.server, project, entry, manifest)
            if restored == "busy":  # another run uses it: this one walks from the start
                return None
            copied = restored is None
        else:
            copied = _copy_in(project, entry, manifest["files"])
        if copied:
            os.utime(entry)  # recently used: evicted last
            findings = [Finding(**f) for f in manifest["findings"]
                        if _wanted(f, roundtrip, with_rows, safety)]
            saved = manifest["safety"] or {}
            created = [(bind, kind, name) for bind, kind, name in saved.get("created", ())] \
                if safety and safety.scope & set(manifest["revisions"]) else []
            return Restored(frozenset(manifest["revisions"]), findings, frozenset(manifest["data"]),
                            manifest["rows"], created, manifest["reads"])
        _remove(entry, manifest, project.scratch.server)  # corrupted: never trusted, rebuilt by this run
    return None


def _restore_databases(server: Server, project: Project, entry: Path, manifest: dict[str, Any]
                       ) -> str | None:
    """templates.restore for an entry made for these binds; "gone" for one that was not."""
    databases = {bind: name for bind, name in manifest.get("databases") or []}
    if set(databases) != set(project.binds):
        return "gone"
    for engine in project.scratch.engines:  # their connections would keep the scratch database
        engine.dispose()
    return templates.restore(server, _server_key(entry), databases)


def _server_key(entry: Path) -> str:
    """An entry's key on the server: its cache directory, environment and heads. The directory
    too: two copies of a project with caches of their own (two checkouts, two CI jobs on one
    server) would otherwise share databases that each one's eviction drops under the other."""
    return _digest([os.path.realpath(entry.parent.parent), entry.parent.name, entry.name])[:12]


def _remove(entry: Path, manifest: dict[str, Any] | None, server: Server | None) -> None:
    """Delete an entry, and its cache databases if this run is on their server."""
    shutil.rmtree(entry, ignore_errors=True)
    if server is not None and manifest is not None and manifest.get("databases"):
        templates.drop(server, _server_key(entry), [name for _, name in manifest["databases"]])


def _unchanged(reads: dict[str, str]) -> bool:
    """Whether the files the entry's walks read still hold what they read."""
    return all(_file_digest(Path(path)) == digest for path, digest in reads.items())


def _same_safety(manifest: dict[str, Any], safety: Safety | None) -> bool:
    if safety is None:
        return True
    inside = sorted(safety.scope & set(manifest["revisions"]))
    saved = manifest.get("safety") or {}
    return not inside or (saved.get("scope") == inside and saved.get("target") == safety.target)


def _wanted(finding: dict[str, Any], roundtrip: bool, with_rows: frozenset[str],
            safety: Safety | None) -> bool:
    """Whether a cached finding belongs in this run: of its checks, and for the revisions in scope."""
    if finding["check"] == "roundtrip":  # the data check alone keeps those about rows
        return roundtrip or (finding["rule"] in ROW_RULES
                             and finding["details"].get("revision") in with_rows)
    if finding["check"] == "data":
        return finding["details"].get("revision") in with_rows
    if finding["check"] == "safety":
        return safety is not None and finding["details"].get("revision") in safety.scope
    return True


def save(cache: Cache, project: Project, findings: list[Finding], roundtrip: bool,
         data: frozenset[str], rows: bool, safety: Safety | None = None,
         created: Iterable[tuple[str | None, str, str]] = (), reads: Iterable[str] = ()) -> None:
    """Keep the scratch database, now at the heads, with what the walk found on the way and how it
    walked: `data`, the revisions it ran with generated rows; `rows`, whether any are left;
    `safety`, the scope and target of the safety check; `created`, what its in-scope revisions
    created (new objects, which its rules never flag); `reads`, the project files it (and the walks
    of the entry it resumed from) opened."""
    chain, directory = cache.chain, cache.directory
    if not all(rev in chain for rev in project.script.get_heads()):
        return  # a revision on the way reads state that no key covers
    heads = {rev: chain[rev] for rev in project.script.get_heads()}
    entry = directory / _digest(sorted(heads.values()))[:20]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".new-", dir=directory))
        try:
            files, databases = {}, None
            server = project.scratch.server
            if server is not None:
                databases = templates.names(_server_key(entry), project.binds)
                for engine in project.scratch.engines:  # PostgreSQL copies no database in use
                    engine.dispose()
                if not templates.save(server, _server_key(entry), databases):
                    return
            else:
                for bind in project.binds:
                    path = project.scratch.path_for(bind)
                    with guard.trusted(), sqlite3.connect(path) as source, \
                            sqlite3.connect(staging / path.name) as target:
                        source.backup(target)  # consistent even while the app's engines hold it open
                    files[path.name] = _file_digest(staging / path.name)
            manifest = {"format": FORMAT, "roundtrip": roundtrip, "reupgrade": project.options.reupgrade,
                        "heads": heads,
                        "revisions": sorted(chain), "files": files, "rows": rows,
                        "data": sorted(data & chain.keys()),
                        "safety": safety and {"scope": sorted(safety.scope & set(chain)),
                                              "target": safety.target,
                                              "created": sorted(created, key=repr)},
                        "reads": {path: _file_digest(Path(path)) for path in sorted(set(reads))},
                        "findings": [f._asdict() for f in findings
                                     if f.rule != "roundtrip-irreversible"]}
            if databases is not None:
                manifest["databases"] = [[bind, name] for bind, name in databases.items()]
            (staging / "manifest.json").write_text(kept.seal(json.dumps(manifest, default=str)))
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _evict(directory, entry, project.scratch.server)
    except (OSError, sqlite3.Error, sa.exc.SQLAlchemyError) as exc:  # unwritable: only costs speed
        warn(f"could not write the cache in {directory}: {exc}")


def _entries(directory: Path) -> list[Path]:
    """The entries of a project environment (not the ones being written: `.new-*`)."""
    try:
        return [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:  # no cache yet, or not a directory: nothing to restore
        return []


def _load_manifest(path: Path) -> dict[str, Any] | None:
    """An entry's manifest if it is intact (its hash matches) and well-formed, else None."""
    try:
        text = kept.unseal(path.read_text(encoding="utf-8"))
        manifest = None if text is None else json.loads(text)
    except (OSError, ValueError):
        return None
    return manifest if _well_formed(manifest) else None


_FINDING_TYPES: dict[str, tuple[type, ...]] = {
    "check": (str,), "rule": (str,), "severity": (str,), "message": (str,), "path": (str, type(None)),
    "line": (int, type(None)), "hint": (str, type(None)), "details": (dict,),
}


def _well_formed(manifest: Any) -> bool:
    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(type(v) is str for v in value)

    def string_map(value: Any) -> bool:
        return isinstance(value, dict) and strings(list(value)) and strings(list(value.values()))

    def finding(value: Any) -> bool:
        return (isinstance(value, dict) and set(value) == set(_FINDING_TYPES)
                and all(type(value[k]) in types for k, types in _FINDING_TYPES.items())
                and value["severity"] in SEVERITIES)

    return (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and type(manifest.get("roundtrip")) is bool and type(manifest.get("rows")) is bool
            and type(manifest.get("reupgrade")) is bool
            and strings(manifest.get("data")) and _safety_well_formed(manifest.get("safety"))
            and string_map(manifest.get("heads"))
            and string_map(manifest.get("files")) and strings(manifest.get("revisions"))
            and string_map(manifest.get("reads")) and _databases_well_formed(manifest.get("databases"))
            and isinstance(manifest.get("findings"), list)
            and all(finding(f) for f in manifest["findings"]))


def _safety_well_formed(saved: Any) -> bool:
    """None, or the safety check's scope, target and created objects ([bind, kind, name] each)."""
    if saved is None:
        return True
    return (isinstance(saved, dict) and isinstance(saved.get("scope"), list)
            and all(type(r) is str for r in saved["scope"]) and type(saved.get("target")) is str
            and isinstance(saved.get("created"), list)
            and all(isinstance(c, list) and len(c) == 3 and type(c[0]) in (str, type(None))
                    and type(c[1]) is str and type(c[2]) is str for c in saved["created"]))


def _databases_well_formed(databases: Any) -> bool:
    """Absent (SQLite), or the cache databases on the server: [bind, name] each."""
    return databases is None or (isinstance(databases, list) and all(
        isinstance(d, list) and len(d) == 2 and type(d[0]) in (str, type(None)) and type(d[1]) is str
        for d in databases))


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


def _directory(root: Path, project: Project, more: list[str]) -> Path:
    """One directory per project environment: env.py, alembic.ini, Migrate options, versions, and
    the server (which one, its version) for a --db-url run."""
    server = project.scratch.server
    parts = [__version__, sqlite3.sqlite_version, repr(sorted(map(str, project.binds)))]
    parts += templates.identity(server) if server is not None else []
    parts += [metadata.version(name) for name in _LIBRARIES]
    for name in ("env.py", "alembic.ini"):
        path = project.directory / name
        parts.append(_file_digest(path) if path.is_file() else "")
    parts += [f"{key}={_stable(value)}" for key, value in sorted(project.migrate_args.items())]
    parts += more
    return root / _digest(parts)[:20]


def _chain_keys(project: Project, dependencies: dict[str, Dependencies], digests: _Digests
                ) -> tuple[dict[str, str], tuple[Script, Reads] | None]:
    """revision -> a hash of its file, the project files it imports, and its ancestors' keys.

    Opaque revisions (and their descendants) get no key: they are never kept. Also returns the
    first opaque revision, with where it reads what no key covers.
    """
    keys: dict[str, str] = {}
    unkeyed = None
    for script in reversed(list(project.script.walk_revisions())):  # parents first
        imported = dependencies[script.path]
        above = parents(script)
        if imported.opaque and unkeyed is None:
            unkeyed = (script, imported.opaque)
        if imported.opaque or not all(p in keys for p in above):
            continue
        keys[script.revision] = _digest([digests.of(script.path), digests.of_files(imported.files),
                                         *sorted(keys[p] for p in above)])
    return keys, unkeyed


def not_kept(cache: Cache) -> list[Finding]:
    """Why every run walks part of the history again: the first revision the cache cannot keep."""
    if cache.unkeyed is None:
        return []
    script, reads = cache.unkeyed
    through = "" if reads.path == script.path else f"imports {relative(reads.path)}, which "
    return [Finding(
        "upgrade", "upgrade-not-cached", "info",
        f"the cache keeps nothing from revision `{script.revision}` on: it {through}reads "
        f"`{reads.name}` (the app's configuration, the environment or a file, which no key covers), "
        "so every run walks it and the revisions after it again",
        relative(reads.path), reads.line, rules.RULES["upgrade-not-cached"].fix,
        {"revision": script.revision})]


class _Digests:
    """File hashes, each file read once per run (many revisions import the same models)."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def of(self, path: str) -> str:
        if path not in self.known:
            self.known[path] = _file_digest(Path(path))
        return self.known[path]

    def of_files(self, paths: frozenset[str]) -> str:
        return _digest([f"{path}={self.of(path)}" for path in sorted(paths)])


def _stable(value: Any) -> str:
    """A Migrate(...) option as text that is the same in every run (no object addresses)."""
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return repr(value)


def _evict(directory: Path, kept: Path, server: Server | None = None) -> None:
    """Keep the entry just written and the most recently used others (KEEP in all), none unused
    for templates.AGE. An entry dated in the future (a clock that was wrong, or jumped back since)
    counts as the least recent: else it would outrank every new entry, which would be evicted as
    soon as it was written. On a server, also drop the cache databases no run used for AGE, which
    no manifest here may name (another machine's, or a cache directory removed by hand)."""
    now = time.time()

    def used(entry: Path) -> float:
        mtime = entry.stat().st_mtime
        return mtime if mtime <= now + 60 else float("-inf")

    others = sorted((p for p in _entries(directory) if p != kept), key=used, reverse=True)
    for old in others[KEEP - 1:] + [p for p in others[:KEEP - 1] if used(p) < now - templates.AGE]:
        _remove(old, _load_manifest(old / "manifest.json"), server)
    if server is not None:
        templates.evict_old(server)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    """The hash of a file's content; for a file that cannot be read, what stops it (the run goes on
    and meets the same error where it reads the file, as with --no-cache)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def clear(server: Server | None) -> list[str]:
    """`migcheck --clear-cache`: remove the local cache and, given a server, migcheck's cache
    databases on it; returns what it removed."""
    removed = []
    if server is not None:  # first: an unreachable server stops it
        removed += [f"database {name} on {server.label}" for name in templates.clear(server)]
    root = cache_root()
    if root is not None and root.exists():
        shutil.rmtree(root)
        removed.append(os.fspath(root))
    return removed
