"""Bounds on work, by counting, and a watchdog for code that used to hang.

A bound is asserted on what the code did, not on how long it took: :func:`counted_io` counts the
``read`` calls and the bytes this thread read (the kernel's own counters in
``/proc/thread-self/io``), so that "skips 256 MiB of zeros a megabyte at a time" or "refuses the
file without reading it" holds on a loaded machine as on an idle one.  :func:`watchdog` is no
bound at all: it stops a test that would otherwise hang the run (a blocking ``open()`` of a FIFO,
a loop the fix made finite), after a minute.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WATCHDOG_SECONDS = 60.0
_IO = Path("/proc/thread-self/io")


class Hung(Exception):
    """The code under test was still running when the watchdog fired (before the fix: waited on a FIFO forever)."""


@contextmanager
def watchdog(seconds: float = WATCHDOG_SECONDS) -> Iterator[None]:
    """Raise :class:`Hung` in the block after ``seconds`` (main thread only, as xdist workers run tests)."""

    def expire(signum: int, frame: object) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Io:
    """What this thread read inside a :func:`counted_io` block: ``read``-like calls and bytes."""

    calls: int = 0
    bytes: int = 0


def _counters() -> tuple[int, int]:
    fields = dict(line.split(": ") for line in _IO.read_text().splitlines())
    return int(fields["syscr"]), int(fields["rchar"])


@contextmanager
def counted_io() -> Iterator[Io]:
    """The reads of this thread in the block (the counter's own read of /proc is taken out), under a watchdog."""
    found = Io()
    calls, size = _counters()
    before_calls, before_bytes = _counters()
    own_calls, own_bytes = before_calls - calls, before_bytes - size
    with watchdog():
        yield found
    after_calls, after_bytes = _counters()
    found.calls = after_calls - before_calls - own_calls
    found.bytes = after_bytes - before_bytes - own_bytes
