"""One live status line on stderr while a long run works: which check, revision k of N, elapsed time.

The checks report where they are through a plain callback, `step(check, done, total)`, and know
nothing about terminals; `silent` is the callback when nobody is watching. The line appears only on a
terminal, only once a run has taken longer than DELAY, and is erased before the report is printed.

Why not click.progressbar: it draws from its first update (no delay), keeps one fixed label while a
run goes through several checks, ends with a newline instead of erasing itself, prints its label on
a non-terminal, and its `update(n, current_item)` differs between click 7.1 and 8. A carriage return
and padding need nothing beyond the standard library, and no ANSI codes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

Progress = Callable[[str, int, int], None]  # (check, revisions done, total; 0 when not counted)

DELAY = 1.0  # seconds before the line appears: a quick run prints nothing but its report
TICK = 0.1  # how often the line is redrawn, so the elapsed time moves even inside one slow revision


def silent(check: str, done: int, total: int) -> None:
    """The progress callback for runs nobody watches."""


def wanted(stream: IO[str], machine_report_on_stdout: bool) -> bool:
    """On a terminal only, and never while stdout carries a report for machines."""
    return not machine_report_on_stdout and bool(getattr(stream, "isatty", lambda: False)())


class StatusLine:
    """Draws the latest step from a background thread, so a slow revision still shows time passing."""

    def __init__(self, stream: IO[str], started: float) -> None:
        self._stream = stream
        self._started = started  # time.perf_counter() when the run began, as the report counts it
        self._where = "starting"
        self._drawn = ""  # what is on the line now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw_until_stopped, name="migcheck-progress",
                                        daemon=True)

    def step(self, check: str, done: int, total: int) -> None:
        self._where = f"{check}, revision {done} of {total}" if total else check

    def _draw_until_stopped(self) -> None:
        if self._stop.wait(max(DELAY - (time.perf_counter() - self._started), 0)):
            return
        while not self._stop.is_set():
            try:
                self._draw(f"migcheck: {self._where} ({time.perf_counter() - self._started:.0f}s)")
            except OSError:  # the terminal went away; the run goes on without its status line
                return
            self._stop.wait(TICK)

    def _draw(self, text: str) -> None:
        try:
            width = os.get_terminal_size(self._stream.fileno()).columns or 80  # 0: size not set
        except (OSError, ValueError):
            width = 80
        text = text[: width - 1]  # a wrapped line could not be taken back with \r
        if text != self._drawn:
            self._stream.write("\r" + text.ljust(len(self._drawn)))  # covers a longer line before it
            self._stream.flush()
            self._drawn = text

    def start(self) -> None:
        self._thread.start()

    def erase(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._drawn:
            try:
                self._stream.write("\r" + " " * len(self._drawn) + "\r")
                self._stream.flush()
            except OSError:
                pass
            self._drawn = ""


@contextmanager
def status_line(stream: IO[str], enabled: bool, started: float) -> Iterator[Progress]:
    """The progress callback for one run; the line is gone when the block ends, however it ends."""
    if not enabled:
        yield silent
        return
    line = StatusLine(stream, started)
    line.start()
    try:
        yield line.step
    finally:
        line.erase()
