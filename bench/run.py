"""Time migcheck against the tools it replaces, on generated projects, and write docs/benchmarks.md.

    python bench/run.py              N=50/M=20 and N=200/M=40, median of 3, writes docs/benchmarks.md
    python bench/run.py --large      also N=1000/M=100
    python bench/run.py --small      a quick smoke run (N=20/M=8, one timed run), printed only
    python bench/run.py --profile    also profile one migcheck run at the largest size (cProfile)

For each size, one generated project (bench/generate.py) and, interleaved run by run so that a busy
machine slows every tool alike: migcheck with its default checks; the `flask db` pipeline (upgrade,
check, downgrade base, upgrade: four processes on a fresh SQLite file); pytest-alembic's four default
tests (in their own venv, pytest < 9); one process doing a full upgrade + downgrade (the floor);
`flask db check` on a migrated database (what a warm migcheck run is measured against); migcheck on
the same history with every downgrade `pass`; migcheck as CI runs it on a pull request (in a git
repository, main's cache restored); with --postgres, migcheck --db-url and the `flask db` pipeline on
that server. Every command runs in a fresh process; its wall time and peak RSS (from wait4, which covers the
process and every descendant it waited for) are recorded. Each tool runs once untimed first, which
also checks that it passes. A benchmark, not a test: it reports times and never fails on them.

The databases (and TMPDIR, where migcheck and pytest put theirs) go to the work directory, on disk
as users run these tools, and again to a tmpfs (/dev/shm) where there is one: SQLite's fsync on
every commit dominates the other tools' times on a busy disk, while migcheck's disposable scratch
database skips it, so the tmpfs rows show the difference that is not about durability.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import docsection
from generate import PACKAGE, Layout, generate

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PA_VENV = BENCH / ".venv-pytest-alembic"
PA_SETUP = BENCH / "pytest_alembic_setup"
LIBRARIES = ("flask", "flask-sqlalchemy", "flask-migrate", "alembic", "sqlalchemy")
DEFAULT_SIZES = ((50, 20), (200, 40))
LARGE_SIZE = (1000, 100)
SMALL_SIZE = (20, 8)


class Sample(NamedTuple):
    seconds: float
    peak_mb: float
    code: int
    cpu: float = 0.0  # user + system seconds of the process tree


class Place(NamedTuple):
    """Where the databases of a run go (also TMPDIR and migcheck's cache)."""

    name: str  # the filesystem type, e.g. "ext4" or "tmpfs"
    directory: Path


class Tool(NamedTuple):
    key: str
    label: str
    steps: list[list[str]]  # commands run one after the other; a sample is their sum (peak: max)
    cwd: Path
    env: dict[str, str]
    place: str
    before: Callable[[], None] | None = None  # run before each sample, untimed
    codes: tuple[int, ...] = (0,)  # the exit codes of a passing run (1: migcheck reporting findings)


class Result(NamedTuple):
    tool: Tool
    samples: list[Sample]
    failure: str | None  # why the tool was not timed (its untimed first run failed)


def measure(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Sample:
    """Run one command in a fresh process: its wall time and the peak RSS of its process tree."""
    with open(log, "ab") as out, tempfile.NamedTemporaryFile("r", suffix=".rusage") as usage:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        code = subprocess.run([sys.executable, str(BENCH / "rusage.py"), usage.name, *argv], cwd=cwd, env=env,
                              stdout=out, stderr=subprocess.STDOUT).returncode
        seconds, kib, cpu = (float(value) for value in usage.read().split())
        out.write(f"# {seconds:.2f} s, {cpu:.2f} s CPU, {kib / 1024:.0f} MB, exit {code}\n".encode())
    return Sample(seconds, kib / 1024, code, cpu)


def sample(tool: Tool, log: Path) -> Sample:
    if tool.before:
        tool.before()
    total, peak, cpu = 0.0, 0.0, 0.0
    for argv in tool.steps:
        one = measure(argv, tool.cwd, tool.env, log)
        total, peak, cpu = total + one.seconds, max(peak, one.peak_mb), cpu + one.cpu
        if one.code not in tool.codes:
            return Sample(total, peak, one.code, cpu)
    return Sample(total, peak, 0, cpu)


def run_tools(tools: list[Tool], repeat: int, logs: Path, label: str) -> list[Result]:
    """One untimed run of each tool (must pass), then `repeat` timed rounds, interleaved."""
    failures: dict[int, str] = {}
    names = [f"{label}-{re.sub(r'[^a-z0-9]+', '', tool.place.lower())}-{tool.key}" for tool in tools]
    for number, tool in enumerate(tools):
        log = logs / f"{names[number]}-warmup.log"
        first = sample(tool, log)
        if first.code != 0:
            failures[number] = f"exit {first.code}"
            print(f"  {tool.label}{_where(tool)}: FAILED with exit {first.code}; log: {log}\n"
                  + _tail(log), file=sys.stderr)
    samples: list[list[Sample]] = [[] for _ in tools]
    for round_ in range(repeat):
        for number, tool in enumerate(tools):
            if number not in failures:
                one = sample(tool, logs / f"{names[number]}-{round_}.log")
                samples[number].append(one)
                print(f"  [{label} {round_ + 1}/{repeat}] {tool.label}{_where(tool)}: {one.seconds:.2f} s, "
                      f"{one.cpu:.2f} s CPU, {one.peak_mb:.0f} MB"
                      f"{'' if one.code == 0 else f', exit {one.code}'}", flush=True)
    return [Result(tool, samples[number], failures.get(number)) for number, tool in enumerate(tools)]


def _where(tool: Tool) -> str:
    return "" if tool.place == "-" else f" ({tool.place})"


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def base_env(database_url: str, tmpdir: Path) -> dict[str, str]:
    """The caller's environment without anything that would change what the tools do."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FLASK_", "MIGCHECK_", "PYTEST_", "GITHUB_"))
           and key not in ("DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV", "FORCE_COLOR", "TMPDIR",
                           "PYTHONDONTWRITEBYTECODE")}  # as users run them: bytecode cached
    tmpdir.mkdir(parents=True, exist_ok=True)
    env.update(DATABASE_URL=database_url, NO_COLOR="1", TMPDIR=str(tmpdir))
    return env


def filesystem(path: Path) -> str:
    """The type of the filesystem `path` is on (from /proc/mounts), or "unknown"."""
    mounts = Path("/proc/mounts")
    if not mounts.exists():
        return "unknown"
    real, best, kind = os.path.realpath(path), "", "unknown"
    for line in mounts.read_text().splitlines():
        fields = line.split()
        point = fields[1].replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def places(work: Path, tmpfs: bool) -> list[Place]:
    kind = filesystem(work)
    found = [Place(kind if kind == "tmpfs" else f"disk ({kind})", work / "db")]
    shm = Path("/dev/shm")
    if tmpfs and found[0].name != "tmpfs" and shm.is_dir() and filesystem(shm) == "tmpfs":
        found.append(Place("tmpfs", Path(tempfile.mkdtemp(prefix="migcheck-bench-", dir=shm))))
    return found


def ensure_pytest_alembic_venv() -> Path:
    """bench/.venv-pytest-alembic: pytest < 9 (pytest-alembic crashes under 9.2) and pytest-alembic,
    with the same Flask/SQLAlchemy/Alembic versions as the environment running the benchmark."""
    requirements = ["pytest<9", "pytest-alembic"] + [
        f"{name}=={importlib.metadata.version(name)}" for name in LIBRARIES]
    python = PA_VENV / "bin" / "python"
    marker = PA_VENV / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"setting up {PA_VENV} ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PA_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
                   check=True)
    marker.write_text(wanted)
    return python


def pytest_alembic_copy(layout: Layout, target: Path) -> Path:
    """A copy of the project set up as pytest-alembic's docs ask: the env.py edit and a conftest."""
    shutil.copytree(layout.root, target, ignore=shutil.ignore_patterns("__pycache__"))
    env_py = target / "migrations" / "env.py"
    original = "    connectable = get_engine()\n"
    text = env_py.read_text()
    if original not in text:
        raise SystemExit(f"bench: the Flask-Migrate env.py template changed; cannot find {original!r}")
    env_py.write_text(text.replace(
        original, '    connectable = config.attributes.get("connection", None) or get_engine()\n'))
    (target / "tests").mkdir()
    for name in ("conftest.py", "test_migrations.py"):
        shutil.copyfile(PA_SETUP / name, target / "tests" / name)
    (target / "pytest.ini").write_text("[pytest]\n")  # the rootdir: no config from outside the copy
    return target


def migcheck_has_cache() -> bool:
    done = subprocess.run([sys.executable, "-m", "migcheck", "--help"], capture_output=True, text=True)
    return "--no-cache" in done.stdout


def tools_for(layout: Layout, place: Place, pa_root: Path | None, pa_python: Path | None,
              configured_url: str, cache: bool, ci_repo: Path | None = None,
              bad: Layout | None = None, pipeline: bool = True) -> list[Tool]:
    python = sys.executable
    tmpdir = place.directory / "tmp"
    fresh = place.directory / "fresh.sqlite"
    fresh_url = f"sqlite:///{fresh}"
    migrated = place.directory / "migrated.sqlite"

    def remove_fresh() -> None:
        fresh.unlink(missing_ok=True)

    def migrate_once() -> None:  # what `flask db check` needs: a database at head
        if not migrated.exists():
            subprocess.run([python, "-m", "flask", "--app", layout.app, "db", "upgrade"], cwd=layout.root,
                           env=base_env(f"sqlite:///{migrated}", tmpdir), check=True, capture_output=True)

    migcheck = [python, "-m", "migcheck", "--app", layout.app]
    # migcheck's cache of migrated scratch databases: private to this benchmark run.
    migcheck_env = {**base_env(configured_url, tmpdir), "MIGCHECK_CACHE_DIR": str(place.directory / "cache")}
    flask_db = [python, "-m", "flask", "--app", layout.app, "db"]
    tools = []
    if cache:
        part = layout.root / PACKAGE / "models" / "part_0.py"

        def edit_models() -> None:
            with open(part, "a") as models:
                models.write("# edited\n")

        tools += [
            Tool("migcheck", "migcheck --no-cache", [migcheck + ["--no-cache"]], layout.root, migcheck_env,
                 place.name),
            Tool("migcheck-warm", "migcheck, warm cache", [migcheck], layout.root, migcheck_env, place.name,
                 edit_models),
        ]
        if ci_repo is not None:
            tools.append(Tool("migcheck-ci", "migcheck, CI: a branch with 1 new revision, main's cache",
                              [migcheck], ci_repo,
                              {**migcheck_env, "MIGCHECK_CACHE_DIR": str(place.directory / "ci-cache")},
                              place.name, ci_cache(ci_repo, layout.app, place, migcheck_env)))
        tools.append(Tool("flask-check", "flask db check (migrated database)", [flask_db + ["check"]],
                          layout.root, base_env(f"sqlite:///{migrated}", tmpdir), place.name, migrate_once))
    else:
        tools.append(Tool("migcheck", "migcheck", [migcheck], layout.root, migcheck_env, place.name))
    if bad is not None:
        tools.append(Tool("migcheck-bad", "migcheck --no-cache, every downgrade `pass`",
                          [[python, "-m", "migcheck", "--app", bad.app, "--no-cache"]], bad.root,
                          migcheck_env, place.name, codes=(1,)))
    if pipeline:
        tools.append(Tool("pipeline", "flask db pipeline (4 processes)",
                          [flask_db + ["upgrade"], flask_db + ["check"], flask_db + ["downgrade", "base"],
                           flask_db + ["upgrade"]], layout.root, base_env(fresh_url, tmpdir), place.name,
                          remove_fresh))
    if pa_root is not None and pa_python is not None:
        tools.append(Tool("pytest-alembic", "pytest-alembic (4 default tests)",
                          [[str(pa_python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/test_migrations.py"]], pa_root, base_env(configured_url, tmpdir),
                          place.name))
    tools.append(Tool("updown", "upgrade + downgrade, one process",
                      [[python, str(BENCH / "updown.py"), PACKAGE, fresh_url]], layout.root,
                      base_env(fresh_url, tmpdir), place.name, remove_fresh))
    return tools


def git_repository(layout: Layout, target: Path) -> Path:
    """A copy of the project as a git repository, as CI checks out a pull request: branch `main`
    holds the project less its newest revision (its models one migration ahead, as when a pull
    request adds a model change and its revision), branch `feature` (checked out) adds the revision."""
    shutil.copytree(layout.root, target, ignore=shutil.ignore_patterns("__pycache__"))
    head = hashlib.sha1(f"migcheck-bench-{layout.revisions - 1}".encode()).hexdigest()[:12]
    [newest] = (target / "migrations" / "versions").glob(f"{head}_*.py")  # as generate.py names it
    text = newest.read_text()
    newest.unlink()
    (target / ".gitignore").write_text("__pycache__/\n*.sqlite\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                        "-c", "init.defaultBranch=main", *args], cwd=target, check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "main")
    git("checkout", "-q", "-b", "feature")
    newest.write_text(text)
    git("add", "-A")
    git("commit", "-q", "-m", "one new revision")
    return target


def ci_cache(repo: Path, app: str, place: Place, env: dict[str, str]) -> Callable[[], None]:
    """What the GitHub Action restores before a run on a pull request: the cache directory that a
    run on the base branch, in the same checkout, saved. Made once, copied in before each run."""
    saved, restored = place.directory / "ci-cache-saved", place.directory / "ci-cache"

    def restore() -> None:
        if not saved.exists():  # exit 1: the models are ahead of main's history (drift); still cached
            subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
            try:
                done = subprocess.run([sys.executable, "-m", "migcheck", "--app", app],
                                      cwd=repo, env={**env, "MIGCHECK_CACHE_DIR": str(saved)},
                                      capture_output=True, text=True)
            finally:
                subprocess.run(["git", "checkout", "-q", "feature"], cwd=repo, check=True)
            if done.returncode not in (0, 1) or not any(saved.glob("*/*/manifest.json")):
                raise SystemExit(f"bench: the run on main saved no cache:\n{done.stdout}{done.stderr}")
        shutil.rmtree(restored, ignore_errors=True)
        shutil.copytree(saved, restored)

    return restore


def postgres_tools(layout: Layout, server_url: str, tmpdir: Path, configured_url: str) -> list[Tool]:
    """On a PostgreSQL server: migcheck with `--db-url` (it creates and drops its own database),
    without and with its cache (warm: after a model edit), against the `flask db` pipeline on a
    database of the same server, made afresh before each of its runs (and dropped at exit)."""
    import atexit
    import secrets

    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    url = sa.engine.make_url(server_url)
    if url.drivername == "postgresql":  # the app needs a driver that is installed
        for driver in ("psycopg", "psycopg2"):
            if importlib.util.find_spec(driver) is not None:
                url = url.set(drivername=f"postgresql+{driver}")
                break
    name = f"migcheck_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def fresh_database() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            connection.exec_driver_sql(f"CREATE DATABASE {name}")

    def drop_database() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")

    atexit.register(drop_database)
    python = sys.executable
    flask_db = [python, "-m", "flask", "--app", layout.app, "db"]
    app_env = base_env(url.set(database=name).render_as_string(hide_password=False), tmpdir)
    server = url.set(database=None).render_as_string(hide_password=False)
    migcheck = [python, "-m", "migcheck", "--app", layout.app, "--db-url", server]
    migcheck_env = {**base_env(configured_url, tmpdir), "MIGCHECK_CACHE_DIR": str(tmpdir / "cache")}
    part = layout.root / PACKAGE / "models" / "part_0.py"

    def edit_models() -> None:
        with open(part, "a") as models:
            models.write("# edited\n")

    return [
        Tool("migcheck", "migcheck --no-cache", [migcheck + ["--no-cache"]], layout.root, migcheck_env,
             PG_PLACE),
        Tool("migcheck-warm", "migcheck, warm cache", [migcheck], layout.root, migcheck_env, PG_PLACE,
             edit_models),
        Tool("pipeline", "flask db pipeline (4 processes)",
             [flask_db + ["upgrade"], flask_db + ["check"], flask_db + ["downgrade", "base"],
              flask_db + ["upgrade"]], layout.root, app_env, PG_PLACE, fresh_database),
    ]


PG_PLACE = "PostgreSQL server"


class SizeResult(NamedTuple):
    revisions: int
    models: int
    generate_seconds: float
    results: list[Result]
    configured_touched: bool


def bench_size(revisions: int, models: int, work: Path, where: list[Place], repeat: int,
               pa_python: Path | None, postgres: str | None = None, sqlite: bool = True,
               pipeline: bool = True) -> SizeResult:
    label = f"N{revisions}-M{models}" + ("" if sqlite else "-pg")  # a size may run on both
    print(f"== {label}", flush=True)
    size_dir = work / label
    (size_dir / "logs").mkdir(parents=True)
    started = time.perf_counter()
    layout = generate(size_dir / "project", revisions, models)
    generate_seconds = time.perf_counter() - started
    pa_root = (pytest_alembic_copy(layout, size_dir / "pytest-alembic-project") if pa_python and sqlite
               else None)
    configured = size_dir / "configured.sqlite"  # what the app is configured with: must stay untouched
    cache = migcheck_has_cache()
    repo = git_repository(layout, size_dir / "repository") if cache and sqlite else None
    bad = generate(size_dir / "bad-project", revisions, models, bad_downgrades=True) if sqlite else None
    tools = [tool for place in (where if sqlite else [])
             for tool in tools_for(layout, place._replace(directory=place.directory / label), pa_root,
                                   pa_python, f"sqlite:///{configured}", cache, repo, bad, pipeline)]
    if postgres:
        tools += postgres_tools(layout, postgres, work / label / "pg-tmp", f"sqlite:///{configured}")
    results = run_tools(tools, repeat, size_dir / "logs", label)
    return SizeResult(revisions, models, generate_seconds, results, configured.exists())


def startup(work: Path, repeat: int) -> list[Result]:
    env = base_env(f"sqlite:///{work / 'configured.sqlite'}", work / "tmp")
    python = sys.executable
    tools = [
        Tool("python", "python -c pass (interpreter start)", [[python, "-c", "pass"]], work, env, "-"),
        Tool("help", "migcheck --help", [[python, "-m", "migcheck", "--help"]], work, env, "-"),
        Tool("version", "migcheck --version", [[python, "-m", "migcheck", "--version"]], work, env, "-"),
    ]
    (work / "logs").mkdir(exist_ok=True)
    print("== startup", flush=True)
    return run_tools(tools, max(repeat, 5), work / "logs", "startup")


def heavy_imports_at_startup() -> list[str]:
    """Which of flask / sqlalchemy / alembic `migcheck --version` imports (should be none)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "migcheck", "--version"],
                          capture_output=True, text=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    return sorted(name for name in names if name.split(".")[0] in ("flask", "sqlalchemy", "alembic"))


def profile(layout_root: Path, work: Path, no_cache: bool) -> str:
    """cProfile one migcheck run; its report line and the top functions by own and cumulative time."""
    out = work / "migcheck.prof"
    argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "migcheck", "--app", f"{PACKAGE}:app"]
    done = subprocess.run(argv + (["--no-cache"] if no_cache else []), cwd=layout_root,
                          env=base_env(f"sqlite:///{work / 'configured.sqlite'}", work / "tmp"),
                          capture_output=True, text=True, check=False)
    text = io.StringIO()
    stats = pstats.Stats(str(out), stream=text)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(60)
    prefixes = [sysconfig.get_path("purelib") + "/", sysconfig.get_path("stdlib") + "/", str(ROOT) + "/"]
    noise = ("   Ordered by", "   List reduced", "<frozen ", "runpy", "<string>:1(<module>)", str(out))
    lines = [(done.stdout or done.stderr).strip().splitlines()[-1]]
    for line in text.getvalue().splitlines():
        if line.strip() and not any(part in line for part in noise):
            for prefix in prefixes:
                line = line.replace(prefix, "")
            lines.append(line.rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- report

def _median(result: Result | None) -> float | None:
    if result is None or not result.samples:
        return None
    return statistics.median(s.seconds for s in result.samples)


def _time_cell(result: Result) -> str:
    if result.failure:
        return f"failed ({result.failure})"
    if not result.samples:
        return "–"
    times = sorted(s.seconds for s in result.samples)
    spread = f" ({times[0]:.2f}–{times[-1]:.2f})" if len(times) > 1 else ""
    return f"{statistics.median(times):.2f} s{spread}"


def _memory_cell(result: Result) -> str:
    if not result.samples:
        return "–"
    return f"{statistics.median(s.peak_mb for s in result.samples):.0f} MB"


def _per_revision(result: Result | None, revisions: int) -> str:
    median = _median(result)
    return "–" if median is None else f"{median / revisions * 1000:.1f} ms"


def _ratio(a: Result | None, b: Result | None) -> str:
    top, bottom = _median(a), _median(b)
    return "–" if top is None or bottom is None else f"{top / bottom:.2f}×"


def _cpu_median(result: Result | None) -> float | None:
    if result is None or not result.samples:
        return None
    return statistics.median(s.cpu for s in result.samples)


def _cpu_cell(result: Result) -> str:
    if result.failure or not result.samples:
        return "–"
    times = sorted(s.cpu for s in result.samples)
    spread = f" ({times[0]:.2f}–{times[-1]:.2f})" if len(times) > 1 else ""
    return f"{statistics.median(times):.2f} s{spread}"


def _both_ratios(a: Result | None, b: Result | None) -> str:
    """Wall and CPU ratio of the medians, e.g. `0.93× (CPU 0.88×)`."""
    wall = _ratio(a, b)
    top, bottom = _cpu_median(a), _cpu_median(b)
    return wall if top is None or bottom is None or not bottom else f"{wall} (CPU {top / bottom:.2f}×)"


# The ratios issue #20 sets targets for: (label, numerator, denominator, target).
TARGETS = (
    ("every downgrade `pass` / correct downgrades (both --no-cache)", "migcheck-bad", "migcheck", "≤ 1.5×"),
    ("warm / `flask db check` on a migrated database", "migcheck-warm", "flask-check", "≤ 0.8×"),
    ("--no-cache / up + down in one process (the floor)", "migcheck", "updown", "≤ 1.0×"),
    ("warm / --no-cache", "migcheck-warm", "migcheck", "PostgreSQL: ≤ 0.5×"),
    ("--no-cache / flask db pipeline", "migcheck", "pipeline", "PostgreSQL: ≤ 0.8×"),
    ("CI (branch, main's cache) / --no-cache", "migcheck-ci", "migcheck", "–"),
)


def machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.exists() else []
    cpu = models[0] if models else platform.processor()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("migcheck", *LIBRARIES))
    return [f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {cores} cores usable (nproc), {cpu}, {platform.system()} {platform.release()}",
            f"- Python {platform.python_version()}; {versions}"]


def pa_versions(pa_python: Path | None) -> str:
    if pa_python is None:
        return "not run (--no-pytest-alembic)"
    code = "import importlib.metadata as m; print(m.version('pytest-alembic'), m.version('pytest'))"
    done = subprocess.run([str(pa_python), "-c", code], capture_output=True, text=True, check=True)
    plugin, pytest = done.stdout.split()
    return f"pytest-alembic {plugin}, pytest {pytest} (in {PA_VENV.relative_to(ROOT)})"


class Context(NamedTuple):
    command: str
    checks: tuple[str, ...]
    pytest_alembic: str
    loads: tuple[tuple[float, ...], tuple[float, ...]]
    heavy: list[str]
    profile: str | None


def _rows(sizes: list[SizeResult]) -> list[tuple[SizeResult, str, dict[str, Result]]]:
    rows = []
    for size in sizes:
        for place in dict.fromkeys(r.tool.place for r in size.results):
            rows.append((size, place, {r.tool.key: r for r in size.results if r.tool.place == place}))
    return rows


def report(sizes: list[SizeResult], start: list[Result], context: Context) -> str:
    rows = _rows(sizes)
    labels: dict[str, str] = {}
    for size in sizes:  # in the order the tools ran (a PostgreSQL-only size may come first)
        for result in size.results:
            labels.setdefault(result.tool.key, result.tool.label)
    keys = list(labels)
    warm = "migcheck-warm" in keys
    out = ["# Benchmarks", "",
           f"Generated by `{context.command}`; regenerate it rather than editing it. "
           "How to run: `python bench/run.py` (N=50/M=20 and N=200/M=40, median of 3; `--large` adds "
           "N=1000/M=100, `--repeat K`, `--small` for a quick run, `--profile` for a cProfile of migcheck). "
           "It needs network access once, to create `bench/.venv-pytest-alembic`.", "",
           "## Machine", "", *machine(), f"- pytest-alembic: {context.pytest_alembic}",
           f"- load average (1/5/15 min) at start {_loads(context.loads[0])}, "
           f"at end {_loads(context.loads[1])}", "",
           "Other work may share this machine's cores (see the load averages), so absolute times can be "
           "noisy. The tools run interleaved (one run of each, then the "
           "next round), so the **ratios**, measured in the same run on the same project, are fairer "
           "than the absolute times.", "",
           "## What is timed", "",
           "On a project from `bench/generate.py` (N revisions, M models over a few modules; each revision "
           "creates a table or adds an indexed column, autogenerate style with batch mode; Flask-Migrate 4 "
           "single-database env.py), each command in a fresh process:", "",
           f"- **migcheck**: `python -m migcheck --app benchapp:app`, default checks "
           f"({', '.join(context.checks)})"
           + ("; with `--no-cache` (every revision upgraded and round-tripped), and warm: with its cache "
              "of the migrated scratch database filled by an earlier run, after an edit to a models "
              "file (no migration changed)" + ("; and as a CI job with the GitHub Action's cache: the "
              "cache directory that a run on branch `main` saved in the same git checkout (the same "
              "history less its newest revision) restored, then the branch `feature`, with one new "
              "revision to check (the safety and data checks' scope: new since main)."
              if "migcheck-ci" in keys else ".") if warm else "."),
           "- **migcheck, every downgrade `pass`**: `--no-cache` on the same history generated with "
           "`--bad-downgrades`: every revision's round trip fails (exit 1), and the walk must go on.",
           "- **flask db check (migrated database)**: one process on a SQLite file already at head "
           "(upgraded once, untimed): the drift-only anchor for a warm migcheck run.",
           "- **PostgreSQL server** rows (with `--postgres`, at the first size): migcheck `--no-cache "
           "--db-url SERVER` (it creates and drops its own database), warm (its cache, template databases "
           "on the server, filled by an earlier run; after an edit to a models file), and the pipeline "
           "below on a "
           "database of the same server, made afresh before each run. The server's own CPU time is not "
           "in the CPU columns (it is not a child process).",
           "- **flask db pipeline**: `flask db upgrade`, `flask db check`, `flask db downgrade base`, "
           "`flask db upgrade` (four processes; `check` needs the database at head) on a fresh SQLite file.",
           "- **pytest-alembic**: its four default tests (single head, upgrade, model definitions match "
           "DDL, up/down consistency), set up per its docs (env.py uses the connection it passes; "
           "a temp SQLite file per test), pytest < 9.",
           "- **up + down**: `bench/updown.py`, one process: `alembic.command.upgrade(head)` then "
           "`downgrade(base)`, the floor for anything that runs every upgrade and downgrade.", "",
           "Times are the median of the timed runs (min–max in brackets) after one untimed run of each; "
           "memory is the median peak RSS of the process (max over the pipeline's four).", "",
           "**Databases on**: where the SQLite files (and TMPDIR, where migcheck and pytest put theirs) "
           "were. On disk, SQLite syncs every commit to disk (its default), which is what the `flask db` "
           "commands, pytest-alembic and the baseline do; migcheck's scratch database is disposable and "
           "skips that (`PRAGMA synchronous = OFF`), so on a busy disk most of the other tools' time is "
           "waiting for the disk. On tmpfs nothing waits for a disk: those rows compare the work done.", "",
           "## Ratios", "",
           "Each ratio is of medians measured in this run, wall time first, then CPU time (user + system "
           "of the process tree, which a busy machine disturbs less than wall time); the targets are "
           "issue #20's.", "",
           "| N / M | databases on | " + " | ".join(f"{name} (target {target})"
                                                  for name, _, _, target in TARGETS) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in TARGETS) + " |",
           *[f"| {size.revisions} / {size.models} | {place} | "
             + " | ".join(_both_ratios(by_key[top], by_key[bottom])
                          if top in by_key and bottom in by_key else "–" for _, top, bottom, _ in TARGETS)
             + " |"
             for size, place, by_key in rows], "",
           "## Wall time", "",
           "| N / M | databases on | " + " | ".join(labels[k] for k in keys)
           + " | migcheck / pipeline | migcheck / pytest-alembic | migcheck / (up + down) |",
           "| --- | --- | " + " | ".join("---:" for _ in keys) + " | ---: | ---: | ---: |"]
    for size, place, by_key in rows:
        mig = by_key.get("migcheck")
        out.append(f"| {size.revisions} / {size.models} | {place} | "
                   + " | ".join(_time_cell(by_key[k]) if k in by_key else "–" for k in keys)
                   + f" | {_ratio(mig, by_key.get('pipeline'))} | {_ratio(mig, by_key.get('pytest-alembic'))}"
                   f" | {_ratio(mig, by_key.get('updown'))} |")
    out += ["", "## CPU time", "", "User + system time of each command's process tree (median, min–max).", "",
            "| N / M | databases on | " + " | ".join(labels[k] for k in keys) + " |",
            "| --- | --- | " + " | ".join("---:" for _ in keys) + " |"]
    for size, place, by_key in rows:
        out.append(f"| {size.revisions} / {size.models} | {place} | "
                   + " | ".join(_cpu_cell(by_key[k]) if k in by_key else "–" for k in keys) + " |")
    out += ["", "Per revision (median wall time / N). The work per revision grows with the schema for "
            "every tool alike (Alembic's batch mode rebuilds, and reflects, a wider table with a longer "
            "foreign-key chain); migcheck adds no growth of its own: its ratio to the up + down floor "
            "stays flat.", "",
            "| N / M | databases on | migcheck --no-cache | upgrade + downgrade, one process | "
            "flask db pipeline (4 processes) |", "| --- | --- | ---: | ---: | ---: |"]
    for size, place, by_key in rows:
        out.append(f"| {size.revisions} / {size.models} | {place} | "
                   + " | ".join(_per_revision(by_key.get(k), size.revisions)
                                for k in ("migcheck", "updown", "pipeline")) + " |")
    out += ["", "## Peak memory (RSS)", "",
            "| N / M | databases on | " + " | ".join(labels[k] for k in keys) + " |",
            "| --- | --- | " + " | ".join("---:" for _ in keys) + " |"]
    for size, place, by_key in rows:
        out.append(f"| {size.revisions} / {size.models} | {place} | "
                   + " | ".join(_memory_cell(by_key[k]) if k in by_key else "–" for k in keys) + " |")
    out += ["", "Generating the projects took "
            + ", ".join(f"{s.generate_seconds:.2f} s (N={s.revisions})" for s in sizes) + ". "
            + ("The app's configured database was never created."
               if not any(s.configured_touched for s in sizes)
               else "**Something created the app's configured database.**"), "",
            "## Start-up", "",
            "| command | wall time | peak memory |", "| --- | ---: | ---: |"]
    out += [f"| `{r.tool.label}` | {_time_cell(r)} | {_memory_cell(r)} |" for r in start]
    out += ["", "`migcheck --version` imports "
            + (", ".join(f"`{name}`" for name in context.heavy) if context.heavy
               else "neither Flask, SQLAlchemy nor Alembic")
            + " (checked with `python -X importtime`)."]
    if context.profile:
        out += ["", f"## Profile of one migcheck run at N={sizes[-1].revisions}/M={sizes[-1].models}", "",
                "`python -m cProfile -m migcheck" + (" --no-cache" if warm else "")
                + "`: its report line, then the top functions by own time and by cumulative time "
                "(cProfile adds overhead: read the shares, not the seconds).", "", "```", context.profile,
                "```"]
    return "\n".join(out) + "\n"


def _loads(values: tuple[float, ...]) -> str:
    return "/".join(f"{value:.2f}" for value in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--small", action="store_true",
                        help=f"quick run: N={SMALL_SIZE[0]}/M={SMALL_SIZE[1]}, one timed run, "
                             "printed (written only with --output)")
    parser.add_argument("--large", action="store_true",
                        help=f"also N={LARGE_SIZE[0]}/M={LARGE_SIZE[1]}")
    parser.add_argument("--sizes", metavar="NxM,...", help="sizes to run instead, e.g. 50x20,200x40")
    parser.add_argument("--repeat", type=int, help="timed runs per tool (default 3; 1 with --small)")
    parser.add_argument("--no-pytest-alembic", action="store_true",
                        help="skip pytest-alembic (it needs its own venv, created from PyPI)")
    parser.add_argument("--no-tmpfs", action="store_true",
                        help="put the databases in the work directory only, not also on /dev/shm")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one migcheck run at the largest size")
    parser.add_argument("--postgres", metavar="URL",
                        help="also time migcheck --db-url URL and the flask db pipeline on this PostgreSQL "
                             "server (e.g. postgresql://postgres@127.0.0.1:5432/), at the first size or at "
                             "--postgres-size")
    parser.add_argument("--postgres-size", metavar="NxM",
                        help="run the PostgreSQL row at this size alone (first), instead of the first size")
    parser.add_argument("--no-pipeline", action="store_true",
                        help="leave the flask db pipeline out on SQLite (it stays in the PostgreSQL row)")
    parser.add_argument("--output", type=Path,
                        help="the Markdown file to write (default docs/benchmarks.md; none with --small)")
    parser.add_argument("--workdir", type=Path, help="keep the projects and logs here (default: a temp dir, "
                                                      "removed at the end)")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = [tuple(int(part) for part in size.split("x")) for size in args.sizes.split(",")]
    elif args.small:
        sizes = [SMALL_SIZE]
    else:
        sizes = list(DEFAULT_SIZES) + ([LARGE_SIZE] if args.large else [])
    repeat = args.repeat or (1 if args.small else 3)
    output = args.output or (None if args.small else ROOT / "docs" / "benchmarks.md")

    sys.path.insert(0, str(ROOT))
    from migcheck.checks import CHECKS  # no Flask import: just the names

    pa_python = None if args.no_pytest_alembic else ensure_pytest_alembic_venv()
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="migcheck-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    where = places(work, not args.no_tmpfs)
    try:
        load_start = os.getloadavg()
        start = startup(work, repeat)
        heavy = heavy_imports_at_startup()
        # A server run takes minutes on a busy shared server: the PostgreSQL row is of one size only.
        results = []
        if args.postgres and args.postgres_size:
            n, m = (int(part) for part in args.postgres_size.split("x"))
            results.append(bench_size(n, m, work, where, repeat, pa_python, args.postgres, sqlite=False))
        results += [bench_size(n, m, work, where, repeat, pa_python,
                               args.postgres if number == 0 and not args.postgres_size else None,
                               pipeline=not args.no_pipeline)
                    for number, (n, m) in enumerate(sizes)]
        load_end = os.getloadavg()
        profile_text = None
        if args.profile:
            n, m = sizes[-1]
            print(f"== profiling migcheck at N={n}/M={m}", flush=True)
            profile_text = profile(work / f"N{n}-M{m}" / "project", work, migcheck_has_cache())
        command = " ".join(["python bench/run.py", *(sys.argv[1:] if argv is None else argv)])
        text = report(results, start, Context(command, CHECKS, pa_versions(pa_python), (load_start, load_end),
                                              heavy, profile_text))
    finally:
        for place in where[1:]:
            shutil.rmtree(place.directory, ignore_errors=True)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + docsection.kept(output))  # other scripts' sections
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
