"""What the safety check adds to a default migcheck run, and write it into docs/benchmarks.md.

    python bench/safety.py                 N=200/M=40, median of 5, replaces its section of the doc
    python bench/safety.py --repeat 3 --no-write

On one generated project (bench/generate.py, not a git repository), interleaved run by run so that
a busy machine slows every variant alike: the default checks with and without `--skip safety`, for
the default scope (outside git: the head revision) and for `--since base` (every revision in scope:
the most the check can have to watch), with `--no-cache` (every revision walked) and with a warm
cache. The ratio of each pair, measured in the same rounds, is the check's cost. It compares CPU
time (user + system, of the process and its children): on a machine shared with other work the
wall time varies by tens of percent from run to run, the CPU time a run needs much less.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docsection
from generate import APP, generate
from run import ROOT, base_env, machine

DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## The safety check's cost"
VARIANTS = {  # name -> arguments after `--app`
    "no cache, default scope": ["--no-cache"],
    "no cache, --since base": ["--no-cache", "--since", "base"],
    "warm cache, default scope": [],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--revisions", type=int, default=200)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="migcheck-bench-safety-") as work_dir:
        work = Path(work_dir)
        layout = generate(work / "project", args.revisions, args.models)
        env = base_env(f"sqlite:///{work / 'configured.sqlite'}", work / "tmp")
        env["MIGCHECK_CACHE_DIR"] = str(work / "cache")
        runs = [(name, skip) for name in VARIANTS for skip in (False, True)]
        times: dict[tuple[str, bool], list[tuple[float, float]]] = {run: [] for run in runs}
        for round_ in range(args.repeat + 1):  # round 0 warms up (and fills the cache), untimed
            for name, skip in runs:
                argv = [sys.executable, "-m", "migcheck", "--app", APP, *VARIANTS[name],
                        *(["--skip", "safety"] if skip else [])]
                cpu, wall = timed(argv, layout.root, env)
                if round_:
                    times[(name, skip)].append((cpu, wall))
                    print(f"  [{round_}/{args.repeat}] {name}{', --skip safety' if skip else ''}: "
                          f"{cpu:.2f} s CPU, {wall:.2f} s wall", flush=True)
        share = _profiled_share(layout.root, env, work / "safety.prof")
        section = _section(args, times, share)
    print(section)
    if not args.no_write:
        docsection.write(DOC, "safety-check", section)
    return 0


def timed(argv: list[str], cwd: Path, env: dict[str, str], exits: tuple[int, ...] = (0,)
          ) -> tuple[float, float]:
    """CPU seconds (user + system, children included) and wall seconds of one run, which must end
    with one of `exits`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in exits:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


# The safety check's own entry points: what the walk calls (the op hook's own work is in `seen`;
# `invoke` also runs the operation itself), the scope and target lookups, and importing its modules.
_OWN = {("safety.py", "seen"), ("safety.py", "before"), ("safety.py", "after"),
        ("safety.py", "targets"), ("scope.py", "find"), ("safety.py", "<module>"),
        ("rawsql.py", "<module>")}


def _profiled_share(root: Path, env: dict[str, str], output: Path) -> tuple[float, float]:
    """One `--no-cache --since base` run under cProfile: the seconds spent in the safety check's
    own code, and the run's total."""
    argv = [sys.executable, "-m", "cProfile", "-o", str(output), "-m", "migcheck", "--app", APP,
            "--no-cache", "--since", "base"]
    subprocess.run(argv, cwd=root, env=env, capture_output=True, check=True)
    stats = pstats.Stats(str(output))
    own = sum(cumulative for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
              if (Path(path).name, name) in _OWN and "migcheck" in Path(path).parts)
    return own, stats.total_tt  # type: ignore[attr-defined]


def _section(args: argparse.Namespace, times: dict[tuple[str, bool], list[tuple[float, float]]],
             share: tuple[float, float]) -> str:
    lines = [
        HEADING, "",
        f"Generated by `python bench/safety.py --repeat {args.repeat}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}); "
        f"{'; '.join(line.removeprefix('- ') for line in machine()[1:3])}.",
        "",
        f"N={args.revisions} revisions / M={args.models} models, default checks, `--app` only "
        "otherwise; the project is not a git repository, so the default scope is the head revision. "
        "Each pair ran interleaved in the same rounds. CPU time is user + system of the run's "
        "process tree (stable on a shared machine); the ratio is the median of the per-round "
        "ratios (with / without). Wall times are shown for scale; they swing with the machine's load.",
        "",
        "| run | CPU with safety | CPU `--skip safety` | CPU with / without (median of rounds) "
        "| wall with / without (medians) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in VARIANTS:
        with_ = [cpu for cpu, _ in times[(name, False)]]
        without = [cpu for cpu, _ in times[(name, True)]]
        ratios = [a / b for a, b in zip(with_, without, strict=True)]
        walls = [statistics.median(wall for _, wall in times[(name, skip)]) for skip in (False, True)]
        lines.append(f"| {name} | {statistics.median(with_):.2f} s ({min(with_):.2f}–{max(with_):.2f}) "
                     f"| {statistics.median(without):.2f} s ({min(without):.2f}–{max(without):.2f}) "
                     f"| {statistics.median(ratios):.3f}× | {walls[0]:.2f} s / {walls[1]:.2f} s |")
    own, total = share
    lines += ["", f"Under cProfile, one `--no-cache --since base` run (every revision watched) spent "
                  f"{own:.3f} s of {total:.2f} s ({100 * own / total:.1f}%) in the safety check's own "
                  "code: its hooks around each step and operation, the scope and target lookups and "
                  "importing its modules."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
