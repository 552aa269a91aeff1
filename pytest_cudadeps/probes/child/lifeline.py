"""The child's watchdog: it ends, with everything in its process group, when the process that started it is gone.

A probe child runs in a session of its own (so that a timeout can kill torch's workers with it), so
nothing sends it a signal when its parent dies: before this, a SIGKILL of pytest, or a SIGTERM that
pytest did not handle, left every child running for good.  Two guards, each for what the other misses:

- ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills this process when the thread that started it
  exits, whatever this process is doing (a constructor that spins holding the GIL included).  A parent
  that died before the call is seen by comparing ``getppid()`` with the pid the parent wrote down.
- the lifeline: the read end of a pipe whose only write end the parent holds.  A watcher process, forked
  before any foreign code runs and left in the child's process group, reads it; EOF means the parent is
  gone, however it ended, and the watcher then kills the whole group, so that the workers the child
  started (which PDEATHSIG does not reach) go too.  A process of its own, not a thread: PDEATHSIG may
  kill the child first, and a thread would die with it.  When the child ends normally, the parent kills
  its group, the watcher with it.

:func:`hold` runs in the launcher, before the probe's module is imported (no thread runs yet to fork).
"""

from __future__ import annotations

import ctypes
import os
import signal

LIFELINE_VARIABLE = "CUDADEPS_LIFELINE"  # "FD PARENT_PID": the pipe's read end and who the parent is
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def hold() -> None:
    """Arm both guards (see the module docstring); nothing when the parent passed no lifeline."""
    spec = os.environ.pop(LIFELINE_VARIABLE, "").split()
    if len(spec) != 2:
        return
    fd, parent = int(spec[0]), int(spec[1])
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        _end()
    if os.fork() == 0:
        _watch(fd)
    os.close(fd)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the lifeline alone
        pass


def _watch(fd: int) -> None:
    """The watcher: holds nothing of the child's (the request pipe, its output) and waits for EOF."""
    try:
        quiet = os.open(os.devnull, os.O_RDWR)
        for standard in (0, 1, 2):
            os.dup2(quiet, standard)
        while os.read(fd, 1):  # the parent never writes: this returns only at EOF
            pass
    finally:
        _end()


def _end() -> None:
    """Kill this process's group (this process and what it started), then this process for sure."""
    try:
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(1)
