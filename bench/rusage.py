"""Run one command and write its wall time, peak RSS and CPU time (user + system, of the command and
every descendant it waited for) to a file: `python rusage.py OUT CMD...`.

A small process of its own, because a child's peak RSS starts at the RSS of the process it was
forked from (Linux records the old memory's high-water mark at exec): measured straight from the
benchmark, which has SQLAlchemy and Alembic loaded, even `python -c pass` would show ~60 MB.
wait4's ru_maxrss covers the command and every descendant it waited for.
"""

import os
import sys
import time


def main(out: str, *argv: str) -> int:
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS
    with open(out, "w") as file:
        file.write(f"{seconds} {kib} {usage.ru_utime + usage.ru_stime}\n")
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
