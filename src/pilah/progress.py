"""One progress display for long loops (scanning, predicting, caching): a line with a bar and an ETA on stderr,
redrawn in place on a terminal, every 10 % otherwise (logs stay short)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
BAR_WIDTH = 30


class Progress:
    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (total - done) if done else 0.0
        filled = int(BAR_WIDTH * done / max(total, 1))
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"{self.label} [{bar}] {done}/{total}  {elapsed:.0f}s, ETA {eta:.0f}s"
        if self.tty:
            print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
        elif done * 10 // max(total, 1) != self.last_decile:
            self.last_decile = done * 10 // max(total, 1)
            print(line, file=sys.stderr, flush=True)


def track(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """Yield `items`, showing progress after each."""
    progress = Progress(label)
    for done, item in enumerate(items, 1):
        yield item
        progress(done, total)
