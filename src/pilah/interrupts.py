"""Ctrl-C and `kill` (SIGTERM) stop Pilah cleanly: exit status 130, and a training run that can be resumed.

A stop is recorded before it is raised as KeyboardInterrupt, because raised at an arbitrary point it can be lost:
JAX registers a garbage-collection callback, and an exception raised inside one is only printed (measured: 30 of
269 signals raised while JAX traced), and JAX's tracing turned 3 more into a ValueError. So while a model trains
the stop is only recorded, and training raises it before its next batch (`raise_if_requested`), where nothing is
half-done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested = threading.Event()
_held = threading.Event()  # set while training: record a stop, raise it later


def install() -> None:
    """Turn SIGTERM, and SIGINT unless this process was started ignoring it (a background job), into a stop."""
    _requested.clear()
    signal.signal(signal.SIGTERM, _stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop)


def _stop(signum, frame) -> None:
    _requested.set()
    if not _held.is_set():
        raise KeyboardInterrupt


@contextmanager
def raised_at_safe_points() -> Iterator[None]:
    """Within, a stop is only recorded; the code inside calls `raise_if_requested` where it can stop cleanly. A stop
    recorded by the end is raised on leaving."""
    _held.set()
    try:
        raise_if_requested()
        yield
    finally:
        _held.clear()
    raise_if_requested()


def raise_if_requested() -> None:
    if _requested.is_set():
        raise KeyboardInterrupt
