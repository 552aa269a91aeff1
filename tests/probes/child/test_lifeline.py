"""No probe child outlives the process that started it: SIGKILL of the parent (the lifeline and
PR_SET_PDEATHSIG), SIGTERM and SIGHUP (the parent's handler, :func:`pytest_cudadeps.probes.runner.stop_on_signals`).

A real parent is started (a Python process with a ChildGroup, as the plugin session has one); its child
starts a grandchild in its process group, as torch's all-reduce does; the parent is signalled, and
/proc is polled, a bounded number of times, until the child and the grandchild are gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_cudadeps
from tests.probes.test_runner import write_probe

POLLS = 1200  # of 50 ms: the watchdog of a test whose children never end; the count is no bound on time

# the child: a grandchild in its process group, both pids written down, then a sleep past any test run
CHILD = ("import subprocess, time\n"
         "grandchild = subprocess.Popen(['sleep', '600'])\n"
         "with open(request['pids'] + '.tmp', 'w') as out: out.write(f'{os.getpid()} {grandchild.pid}')\n"
         "os.rename(request['pids'] + '.tmp', request['pids'])\n"
         "time.sleep(600)\n")

PARENT = """
import sys
from pytest_cudadeps.probes.runner import ChildGroup, Running, stop_on_signals
folder, pids, code = sys.argv[1:4]
group = ChildGroup()
stop_on_signals(group)
Running("echo_probe", {"then": ["sleeping"], "code": code, "pids": pids}, timeout=600, paths=[folder],
        group=group).wait()
"""


def alive(pid: int) -> bool:
    """Running or sleeping: not gone and not a zombie (PID 1 of a container may never reap one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def in_group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (the child, its grandchild, its lifeline watcher)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


def wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    for _ in range(POLLS):
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what}: not after {POLLS} polls")


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    folder = write_probe(tmp_path)
    pids_file = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(Path(pytest_cudadeps.__file__).parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(folder), str(pids_file), CHILD], env=env)
    pids: list[int] = []
    try:
        wait_for(lambda: pids_file.exists() or parent.poll() is not None, "the child wrote its pids")
        assert parent.poll() is None, "the parent ended before its child started"
        pids.extend(int(p) for p in pids_file.read_text().split())
        assert all(alive(pid) for pid in pids)
        assert len(in_group(pids[0])) == 3  # the child leads its group: itself, the grandchild, the watcher
        yield parent, pids
    finally:
        for pid in (parent.pid, *pids, *(in_group(pids[0]) if pids else ())):  # a failing test leaves nothing running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.wait()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_no_child_outlives_its_parent(started: tuple[subprocess.Popen[bytes], list[int]], signum: int) -> None:
    parent, pids = started
    parent.send_signal(signum)
    assert parent.wait(timeout=60) == -signum  # the parent ends as the signal asks, not with a status of its own
    wait_for(lambda: not any(alive(pid) for pid in pids), f"child and grandchild {pids} ended after {signum!r}")
    wait_for(lambda: not in_group(pids[0]), "nothing left in the child's process group")


def test_a_user_handler_for_sigterm_is_kept() -> None:
    from pytest_cudadeps.probes.runner import ChildGroup, stop_on_signals

    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        restore = stop_on_signals(ChildGroup())
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
        restore()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)
