"""A time bound for code that used to hang: SIGALRM interrupts a blocked open() or a long loop."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Hung(Exception):
    """The code under test ran past its bound (before the fix: waited on a FIFO forever)."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
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
