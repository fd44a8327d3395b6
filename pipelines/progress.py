"""Progress on long work: a rich bar with elapsed and remaining time on a terminal, plain log
lines (at most one per `every_s` seconds, plus the last) when there is none (CI, `dvc repro`
piped to a file), so that minutes of silence never look like a hang.

Library functions take an optional `on_progress(n)` callback and know nothing of this module;
stages and commands open a `progress(...)` and pass its `advance` down.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

log = logging.getLogger("churnlight.progress")
T = TypeVar("T")
Advance = Callable[[int], None]

# CHURNLIGHT_PROGRESS=0 forces plain lines, =1 forces bars (e.g. in a notebook)
ENV = "CHURNLIGHT_PROGRESS"
_OPEN: list = []  # the rich bar on screen: a progress opened inside another adds a line to it


def _interactive() -> bool:
    forced = os.environ.get(ENV)
    if forced in {"0", "1"}:
        return forced == "1"
    return sys.stderr.isatty() and sys.stdout.isatty()


def _fmt(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Lines:
    """The no-terminal fallback: a log line when due, with the rate-based remaining time."""

    def __init__(self, description: str, total: int | None, unit: str, every_s: float):
        self.description, self.total, self.unit, self.every_s = description, total, unit, every_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        elapsed = now - self.start
        unit = f" {self.unit}" if self.unit else ""
        if not self.total:
            return f"{self.description}: {self.done:,}{unit}, {_fmt(elapsed)} elapsed"
        share = min(self.done / self.total, 1.0)
        left = elapsed / share - elapsed if share > 0 else float("nan")
        remaining = _fmt(left) if share > 0 else "?"
        return (
            f"{self.description}: {self.done:,}/{self.total:,}{unit} ({share:.0%}), "
            f"{_fmt(elapsed)} elapsed, ~{remaining} left"
        )


@contextmanager
def progress(
    description: str, total: int | None = None, *, unit: str = "", every_s: float = 15.0
) -> Iterator[Advance]:
    """Yield `advance(n=1)`; a bar on a terminal, else a log line every `every_s` seconds and a
    closing line with the total time (only when the work took longer than `every_s`)."""
    if _interactive() and _OPEN:  # rich shows one live display at a time: a line in it
        bar = _OPEN[-1]
        task = bar.add_task(description, total=total)
        try:
            yield lambda n=1: bar.advance(task, n)
        finally:
            bar.remove_task(task)
        return
    if _interactive():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(description, total=total)
            _OPEN.append(bar)
            try:
                yield lambda n=1: bar.advance(task, n)
            finally:
                _OPEN.pop()
        return
    lines = _Lines(description, total, unit, every_s)
    yield lines.advance
    now = time.monotonic()
    if now - lines.start >= every_s:
        log.info("%s (done)", lines.line(now))


def track(
    items: Iterable[T], description: str, total: int | None = None, *, unit: str = ""
) -> Iterator[T]:
    """Iterate with progress; `total` defaults to len(items) when it has one."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(description, total, unit=unit) as advance:
        for item in items:
            yield item
            advance(1)
