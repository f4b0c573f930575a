"""The cache on a MariaDB --db-url server: how a copy of a migrated database is made, and what the
cache saves a run; written into docs/benchmarks.md.

    python bench/mariadb_cache.py --mysql mysql+pymysql://root@127.0.0.1:3306/   N=60/M=20, median of 5
    python bench/mariadb_cache.py --mysql URL --repeat 3 --no-write

On one generated project (bench/generate.py): `migcheck --db-url URL --no-cache` against a warm run
(its cache filled by an earlier run; after an edit to a models file), interleaved. Then the ways to
copy the migrated database the cache keeps, each timed on the server (median of --repeat): migcheck's
(templates.py: each table from `SHOW CREATE TABLE`, its rows by `INSERT … SELECT`), `CREATE TABLE …
LIKE` + `INSERT … SELECT` (which leaves the foreign keys out), `mysqldump | mysql` when both are on
PATH, and `RENAME TABLE` to another database and back (a move, not a copy: the entry would be gone
while a run uses it). Wall time counts: the copies run on the server.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docsection
import sqlalchemy as sa
from generate import APP, PACKAGE, generate
from run import ROOT, base_env, machine
from safety import timed
from sqlalchemy.pool import NullPool

from migcheck.databases import templates

DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## The cache on a MariaDB server"
COPY = "migcheck_bench_copy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mysql", metavar="URL", required=True, help="a MariaDB server URL")
    parser.add_argument("--revisions", type=int, default=60)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="migcheck-bench-mariadb-") as work_dir:
        work = Path(work_dir)
        layout = generate(work / "project", args.revisions, args.models)
        env = base_env(f"sqlite:///{work / 'configured.sqlite'}", work / "tmp")
        env["MIGCHECK_CACHE_DIR"] = str(work / "cache")
        command = [sys.executable, "-m", "migcheck", "--app", APP, "--db-url", args.mysql]
        runs: dict[str, list[float]] = {"cold": [], "warm": []}
        models = layout.root / PACKAGE / "models" / "part_0.py"
        for round_ in range(args.repeat + 1):  # round 0 fills the cache, untimed
            _, cold = timed([*command, "--no-cache"], layout.root, env, exits=(0, 1))
            with open(models, "a") as edit:
                edit.write("# edited\n")
            _, warm = timed(command, layout.root, env, exits=(0, 1))
            if round_:
                runs["cold"].append(cold)
                runs["warm"].append(warm)
                print(f"  [{round_}/{args.repeat}] cold {cold:.2f} s, warm {warm:.2f} s", flush=True)
        kept = _kept(work / "cache")
        try:
            copies = _copies(args.mysql, kept, args.repeat)
        finally:  # the cache directory goes with the temporary directory: its database too
            _drop(args.mysql, kept)
        section = _section(args, runs, copies)
    print(section)
    if not args.no_write:
        docsection.write(DOC, "mariadb-cache", section)
    return 0


def _kept(cache: Path) -> str:
    """The cache database the runs kept (one entry, one bind)."""
    import json

    [manifest] = cache.glob("*/*/manifest.json")
    [(_, name)] = json.loads(json.loads(manifest.read_text())["content"])["databases"]
    return str(name)


def _admin(url: str) -> sa.engine.Engine:
    return sa.create_engine(sa.engine.make_url(url).set(database=None), poolclass=NullPool,
                            isolation_level="AUTOCOMMIT")


def _drop(url: str, database: str) -> None:
    with _admin(url).connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")


def _copies(url: str, source: str, repeat: int) -> dict[str, list[float]]:
    admin = _admin(url)
    with admin.connect() as connection:
        tables = [str(name) for (name,) in connection.exec_driver_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (source,))]

    def with_connection(copy: Callable[[sa.engine.Connection], None]) -> Callable[[], None]:
        def run() -> None:
            with admin.connect() as connection:
                copy(connection)
        return run

    def like(connection: sa.engine.Connection) -> None:
        connection.exec_driver_sql(f"CREATE DATABASE {COPY}")
        for table in tables:
            connection.exec_driver_sql(f"CREATE TABLE {COPY}.`{table}` LIKE `{source}`.`{table}`")
            connection.exec_driver_sql(f"INSERT INTO {COPY}.`{table}` SELECT * FROM `{source}`.`{table}`")

    def rename(connection: sa.engine.Connection) -> None:
        connection.exec_driver_sql(f"CREATE DATABASE {COPY}")
        there = ", ".join(f"`{source}`.`{t}` TO {COPY}.`{t}`" for t in tables)
        back = ", ".join(f"{COPY}.`{t}` TO `{source}`.`{t}`" for t in tables)
        connection.exec_driver_sql(f"RENAME TABLE {there}")
        connection.exec_driver_sql(f"RENAME TABLE {back}")

    ways: dict[str, Callable[[], None]] = {
        "migcheck's copy (SHOW CREATE TABLE, INSERT … SELECT)":
            with_connection(lambda connection: templates._copy(connection, source, COPY)),
        "CREATE TABLE … LIKE, INSERT … SELECT (no foreign keys)": with_connection(like),
        "RENAME TABLE there and back (a move)": with_connection(rename),
    }
    if shutil.which("mysqldump") and shutil.which("mysql"):
        ways["mysqldump \\| mysql"] = lambda: _dump_and_load(url, source)
    times: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(repeat):
        for way, copy in ways.items():
            started = time.perf_counter()
            copy()
            times[way].append(time.perf_counter() - started)
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {COPY}")
    admin.dispose()
    return times


def _dump_and_load(url: str, source: str) -> None:
    where = sa.engine.make_url(url)
    password = [f"--password={where.password}"] if where.password else []
    options = [f"--host={where.host or '127.0.0.1'}", f"--port={where.port or 3306}",
               f"--user={where.username or 'root'}", *password]
    subprocess.run(["mysql", *options, "-e", f"CREATE DATABASE {COPY}"], check=True)
    dump = subprocess.Popen(["mysqldump", *options, source], stdout=subprocess.PIPE)
    subprocess.run(["mysql", *options, COPY], stdin=dump.stdout, check=True)
    dump.wait()


def _section(args: argparse.Namespace, runs: dict[str, list[float]],
             copies: dict[str, list[float]]) -> str:
    def shown(values: list[float], scale: float = 1, unit: str = "s") -> str:
        digits = 0 if unit == "ms" else 2
        low, median, high = (scale * v for v in (min(values), statistics.median(values), max(values)))
        return f"{median:.{digits}f} {unit} ({low:.{digits}f}–{high:.{digits}f})"

    ratio = statistics.median(w / c for w, c in zip(runs["warm"], runs["cold"], strict=True))
    return "\n".join([
        HEADING, "",
        f"Generated by `python bench/mariadb_cache.py --mysql URL --repeat {args.repeat}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}); "
        f"{'; '.join(line.removeprefix('- ') for line in machine()[1:3])}; MariaDB on the same machine.",
        "",
        f"N={args.revisions} revisions / M={args.models} models, `migcheck --db-url URL`. On MariaDB the "
        "generated downgrades fail (an index a foreign key needs is dropped first), so every run reports "
        "them: cold and warm alike. Warm: the cache filled by an earlier run, after an edit to a models "
        "file. Interleaved; the ratio is the median of the per-round ratios.",
        "",
        "| run | wall |",
        "| --- | ---: |",
        f"| `--no-cache` | {shown(runs['cold'])} |",
        f"| warm | {shown(runs['warm'])} |",
        f"| warm / `--no-cache` | {ratio:.2f}× |",
        "",
        "Copying the migrated database the cache keeps (what a warm run restores), on the server:",
        "",
        "| way | wall |",
        "| --- | ---: |",
        *(f"| {way} | {shown(values, 1000, 'ms')} |" for way, values in copies.items()),
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
