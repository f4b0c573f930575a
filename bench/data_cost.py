"""What the data check costs: migcheck with and without it on one generated project, every revision
in scope (`--since base`), and what rows in the round trip cost a walk without it.

    python bench/data_cost.py                      N=200/M=40, median of 5, writes its section of
                                                   docs/benchmarks.md
    python bench/data_cost.py --before DIR         also time the migcheck source tree in DIR (e.g. a
                                                   checkout from before the data check)
    python bench/data_cost.py --sizes 50x20 --repeat 1 --output -    a quick look, printed only

The runs are interleaved (one of each, then the next round) on the same project, each in a fresh
process with `--no-cache`, so a busy machine slows them alike; the ratios are what to read. Besides
the wall time, each run's CPU time (user + system, from the kernel's accounting of the child) is
recorded: on a machine shared with other work the wall time mostly measures the others, the CPU
time much less so. The section goes between the `data-check` markers of the output file, which
`bench/run.py` keeps when it rewrites the rest.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import docsection
from generate import generate
from run import ROOT, base_env, machine


class Sample(NamedTuple):
    seconds: float  # wall time
    cpu: float  # user + system time of the process and its children
    code: int


def measure(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "ab") as out:
        code = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(seconds, cpu, code)

SECTION = "data-check"  # its marked section of docs/benchmarks.md (docsection.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="200x40", help="NxM,... (default 200x40)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a migcheck source tree from before the data check "
                                                    "(e.g. from `git archive`), to time too")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="the Markdown file whose data-check section to write; - to print only")
    args = parser.parse_args(argv)
    sizes = [tuple(int(part) for part in size.split("x")) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="migcheck-data-bench-"))
    try:
        rows = [_bench(n, m, work, args.repeat, args.before) for n, m in sizes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = " ".join(["python bench/data_cost.py", *(sys.argv[1:] if argv is None else argv)])
    section = _section(rows, command, args.repeat, args.before is not None)
    print(section)
    if args.output != "-":
        docsection.write(Path(args.output), SECTION, section)
        print(f"wrote {args.output}")
    return 0


def _bench(revisions: int, models: int, work: Path, repeat: int, before: Path | None
           ) -> tuple[int, int, dict[str, list[Sample]]]:
    root = work / f"N{revisions}-M{models}"
    layout = generate(root / "project", revisions, models)
    env = base_env(f"sqlite:///{root / 'configured.sqlite'}", root / "tmp")
    migcheck = [sys.executable, "-m", "migcheck", "--app", layout.app, "--no-cache", "--since", "base"]
    variants = {"data": (migcheck, env), "skip": (migcheck + ["--skip", "data"], env)}
    if before is not None:
        # its default checks are the ones --skip data leaves (it has no data check)
        variants["before"] = (migcheck if _knows_since(before) else migcheck[:-2],
                              {**env, "PYTHONPATH": str(before.resolve())})
    samples: dict[str, list[Sample]] = {key: [] for key in variants}
    log = root / "runs.log"
    for round_ in range(repeat + 1):  # the first round is untimed: it warms the file cache
        for key, (argv, variant_env) in variants.items():
            one = measure(argv, layout.root, variant_env, log)
            if one.code != 0:
                raise SystemExit(f"{key} failed with exit {one.code}; see {log}:\n{log.read_text()[-3000:]}")
            if round_:
                samples[key].append(one)
            print(f"  N={revisions} [{round_}/{repeat}] {key}: {one.seconds:.2f} s wall, {one.cpu:.2f} s CPU",
                  flush=True)
    return revisions, models, samples


def _knows_since(tree: Path) -> bool:
    return (tree / "migcheck" / "scope.py").is_file()


def _section(rows: list[tuple[int, int, dict[str, list[Sample]]]], command: str, repeat: int,
             before: bool) -> str:
    lines = ["## The data check's cost", "",
             f"Generated by `{command}` (regenerate it rather than editing it); "
             f"{machine()[0].removeprefix('- ')}, load average at the end "
             f"{'/'.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores.", "",
             "On the generated project (every revision creates a table with a foreign key to an older one, "
             "or adds an indexed column), with every revision in the data check's scope (`--since base`): "
             "before each upgrade every table gets rows, and the round trip compares them. Each run is a "
             f"fresh process with `--no-cache`; median of {repeat} interleaved runs (min–max). CPU time is "
             "user + system time: on a shared machine the wall time mostly measures the other work."
             + (" *Before* is migcheck from before rows were part of the round trip (no data check): "
                "what rows in the round trip cost a walk without generated rows." if before else ""),
             ""]
    keys = ["data", "skip"] + (["before"] if before else [])
    labels = {"data": "default (with data)", "skip": "--skip data", "before": "before"}
    for measure_name, value in (("CPU time", lambda s: s.cpu), ("Wall time", lambda s: s.seconds)):
        lines += [f"{measure_name}:", "",
                  "| N / M | " + " | ".join(labels[k] for k in keys) + " | data / skip |"
                  + (" skip / before |" if before else ""),
                  "| --- | " + " | ".join("---:" for _ in keys) + " | ---: |" + (" ---: |" if before else "")]
        for revisions, models, samples in rows:
            medians = {k: statistics.median(value(s) for s in samples[k]) for k in keys}
            cells = [f"{revisions} / {models}"] + [_cell([value(s) for s in samples[k]]) for k in keys]
            cells.append(f"{medians['data'] / medians['skip']:.2f}×")
            if before:
                cells.append(f"{medians['skip'] / medians['before']:.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


if __name__ == "__main__":
    sys.exit(main())
