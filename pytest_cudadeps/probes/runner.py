"""Run a probe in a child process: a fresh interpreter, a timeout, and progress it cannot garble.

Everything that runs foreign code (dlopen of the CUDA libraries, libcuda, NVML, torch)
runs here and never in the pytest process: a constructor that segfaults, spins, or
calls ``exit(0)`` ends the child, and the parent still knows which step it was in,
because the child reports ``begin``/``end`` of each step as JSON lines (see
:mod:`pytest_cudadeps.probes.child.protocol`, which also defines every request and answer).

What the child says travels on a private descriptor (a file passed to it alone, its number
and a per-run token in ``CUDADEPS_CHANNEL``): only lines carrying the token count, so that
a library that prints, or writes to a descriptor it guesses, cannot turn a failure into a
pass.  The child's stdout and stderr go to a file, and a step ends on the child's own exit
or the timeout, never on the EOF of a pipe that a background process it forked holds open;
that process, and anything else left in the child's process group, is killed then.

The child is ``sys.executable`` (or the checked environment's own interpreter, for a framework that searches
``site.getsitepackages()``) without ``-I``: the checked environment's site-packages
(``--cuda-deps-path``) are inserted after the standard library and before the
interpreter's own site-packages (an ``enum/`` folder there cannot shadow the standard
library).  This package's child modules are imported from this very package's folder, whatever
the checked environment holds (another version of pytest-cudadeps there cannot answer for it), and
nothing else of this interpreter's is put on ``sys.path``.  The child starts in its own session
so that the whole process group can be killed (torch's all-reduce spawns workers of its own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import IO, TypeVar

from pytest_cudadeps.probes.child.lifeline import LIFELINE_VARIABLE
from pytest_cudadeps.probes.child.protocol import ProtocolError, decode

T = TypeVar("T")
JsonObject = dict[str, object]
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder that holds pytest_cudadeps/
_STDERR_TAIL = 2000
_PROTOCOL_CAP = 64 << 20  # bytes of protocol lines read back: a child cannot fill the parent's memory
CHANNEL_VARIABLE = "CUDADEPS_CHANNEL"  # "FD TOKEN": where the child writes its lines, and their token
PATHS_VARIABLE = "CUDADEPS_PATHS"  # the inspected folders, put after the standard library
PACKAGE_VARIABLE = "CUDADEPS_PACKAGE"  # the folder that holds this package: its child modules are imported from it
# sys.path[0] of "python -c" is the working folder, which may hold a torch/ source tree: dropped.
_LAUNCHER = (
    "import os, sys, runpy\n"
    "del sys.path[0]\n"
    "site = next((i for i, p in enumerate(sys.path) if os.path.basename(p) in ('site-packages', 'dist-packages')),"
    " len(sys.path))\n"
    # each given site folder followed by the folders of its .pth files' path lines, as the parent's scan reads them
    # (distributions.pth_entries: a setup.py develop or a PEP 660 path line); import lines are not run
    "def pth(d):\n"
    "    try:\n"
    "        names = sorted(n for n in os.listdir(d) if n.endswith('.pth') and not n.startswith('.'))\n"
    "    except OSError:\n"
    "        return []\n"
    "    out = []\n"
    "    for n in names:\n"
    "        try:\n"
    "            if os.path.isfile(os.path.join(d, n)):\n"
    "                with open(os.path.join(d, n), encoding='utf-8', errors='replace') as f:\n"
    f"                    out += [x.rstrip() for x in f.read({1 << 20}).splitlines()[:{10_000}]]\n"
    "        except OSError:\n"
    "            continue\n"
    "    out = [os.path.abspath(os.path.join(d, x)) for x in out if x.strip() and not x.startswith(('#', 'import ', 'import\\t'))]\n"
    "    return [x for x in out if os.path.isdir(x)]\n"
    "given = []\n"
    f"for p in [p for p in os.environ.pop({PATHS_VARIABLE!r}, '').split(os.pathsep) if p]:\n"
    "    given += [q for q in [p, *pth(p)] if q not in given]\n"
    "sys.path[site:site] = given\n"
    "import types\n"
    f"package = os.path.join(os.environ.pop({PACKAGE_VARIABLE!r}), 'pytest_cudadeps')\n"
    "for name, folder in (('pytest_cudadeps', package), ('pytest_cudadeps.probes', os.path.join(package, 'probes')),"
    " ('pytest_cudadeps.probes.child', os.path.join(package, 'probes', 'child'))):\n"
    "    module = sys.modules[name] = types.ModuleType(name)\n"
    "    module.__path__ = [folder]\n"
    "from pytest_cudadeps.probes.child.lifeline import hold\n"
    "hold()\n"
    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
)


_lifeline: list[int] = []  # [read end, write end]: made once per process, the write end never closed


def _lifeline_end() -> int:
    """The read end of this process's lifeline pipe (:mod:`pytest_cudadeps.probes.child.lifeline`).

    The write end stays open here, non-inheritable, until this process is gone: then every child's
    watcher reading the read end sees EOF and kills the child's process group.
    """
    if not _lifeline:
        _lifeline.extend(os.pipe())  # both ends non-inheritable: spawn passes the read end to children only
    return _lifeline[0]


class GroupStopped(RuntimeError):
    """A child was asked for after its run ended: nobody waits for its answer."""


class ChildGroup:
    """The children of one run, so that the run can end them all (:meth:`stop`).

    Children may start ahead, in background threads, and a run can end before it needs their
    answers (items deselected, ``-x``, Ctrl-C): then no child may outlive it, and none may start
    after it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[bytes]] = set()
        self._stopped = False

    def spawn(
        self, command: Sequence[str], env: Mapping[str, str], *, stdin: int, output: IO[bytes], channel: int
    ) -> subprocess.Popen[bytes]:
        with self._lock:  # held across Popen: stop() either sees the process or prevents it
            if self._stopped:
                raise GroupStopped("the run has ended")
            lifeline = _lifeline_end()
            env = {**env, LIFELINE_VARIABLE: f"{lifeline} {os.getpid()}"}
            process = subprocess.Popen(command, stdin=stdin, stdout=output, stderr=output, env=dict(env),
                                       pass_fds=(channel, lifeline), start_new_session=True)
            self._live.add(process)
            return process

    def forget(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._live.discard(process)

    def stop(self) -> int:
        """Kill every child still running (with its process group) and start no more; returns how many ran."""
        with self._lock:
            self._stopped = True
            running = [process for process in self._live if process.poll() is None]
        for process in running:
            _kill_group(process)
        return len(running)

    def kill_now(self) -> None:
        """:meth:`stop` for a signal handler: takes no lock (the interrupted thread may hold it).

        ``list()`` of the set is one step under the GIL; a child that a thread spawns at this moment
        is not in it, and ends through its lifeline when this process exits.
        """
        self._stopped = True
        for process in list(self._live):
            if process.returncode is None:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)


STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # a CI cancel, docker stop, Slurm's limit, a closed terminal


def stop_on_signals(group: ChildGroup) -> Callable[[], None]:
    """Until the returned function is called: SIGTERM and SIGHUP kill ``group``'s children, then end this
    process as the signal asks (its default action, so that the exit status says which signal).

    Only signals whose handler is the default one are taken (a handler the user's code set is kept),
    and only from the main thread, where Python allows it.  SIGINT is pytest's: it ends the session,
    whose end stops the group.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    taken = [signum for signum in STOPPING_SIGNALS if signal.getsignal(signum) == signal.SIG_DFL]

    def handle(signum: int, frame: object) -> None:
        group.kill_now()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in taken:
        signal.signal(signum, handle)

    def restore() -> None:
        for signum in taken:
            if signal.getsignal(signum) == handle:
                signal.signal(signum, signal.SIG_DFL)

    return restore


@dataclass(frozen=True)
class ChildRun:
    """What one child said and how it ended.

    ``results`` maps each finished step to its data; ``begun`` lists steps in the
    order they started.  ``returncode`` is None when the child was killed for
    running past ``timeout``; a negative one is the signal that killed it.
    """

    command: tuple[str, ...]
    results: dict[str, JsonObject]
    begun: tuple[str, ...]
    finished: bool
    returncode: int | None
    timed_out: bool
    timeout: float
    elapsed: float
    stderr: str = field(repr=False, default="")

    @property
    def unfinished(self) -> tuple[str, ...]:
        """The steps begun and never ended, in the order they began (several when they ran in parallel)."""
        return tuple(step for step in self.begun if step not in self.results)

    @property
    def current(self) -> str | None:
        """The step the child was in when it ended without finishing (None when it finished)."""
        return self.unfinished[-1] if self.unfinished else None

    @property
    def ok(self) -> bool:
        return self.finished and self.returncode == 0 and not self.timed_out

    def trouble(self) -> str | None:
        """How the child ended, when it did not end well; None when it did."""
        if self.timed_out:
            return f"hung: no answer within {self.timeout:g} s (killed)"
        assert self.returncode is not None
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = "unknown signal"
            # after every answer: a library's destructor or atexit handler (the job would end the same way)
            when = " at exit, after answering" if self.finished else ""
            return f"crashed{when}: killed by signal {-self.returncode} ({name})"
        if not self.finished:
            return f"ended the process early with exit status {self.returncode} (an exit() in library code?)"
        if self.returncode != 0:
            return f"exited with status {self.returncode}"
        return None

    def stderr_tail(self, lines: int = 3) -> tuple[str, ...]:
        kept = [line.rstrip() for line in self.stderr.splitlines() if line.strip()]
        return tuple(line[:300] for line in kept[-lines:])


def child_environment(
    paths: Sequence[str] | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: the checked folders for the launcher to place (see the module docstring).

    Without ``paths`` the child sees this interpreter's ``PYTHONPATH``, as the user's own jobs do;
    with them, ``PYTHONPATH`` is dropped: the child sees that environment, not this one.
    """
    env = dict(os.environ)
    env.update(extra or {})
    if paths is not None:
        env.pop("PYTHONPATH", None)
    env[PATHS_VARIABLE] = os.pathsep.join(paths or ())
    env[PACKAGE_VARIABLE] = _PACKAGE_PARENT
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env


@cache
def dynamic_loader() -> str | None:
    """The program interpreter (PT_INTERP) of this Python: the ld.so that can run it with ``--inhibit-cache``.

    Read from the executable rather than assumed: x86-64 has ``/lib64/ld-linux-x86-64.so.2``,
    aarch64 ``/lib/ld-linux-aarch64.so.1``, and a static or odd build may have none.
    """
    from pytest_cudadeps.engine.elf import program_interpreter

    found = program_interpreter(Path(os.path.realpath(sys.executable)))
    return found if found and os.path.exists(found) else None


def run_probe(
    module: str,
    request: object,
    *,
    timeout: float,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
    executable: str | None = None,
) -> ChildRun:
    """Run ``python -m module`` with ``request`` as JSON on stdin; never raises for what the child does.
    ``executable``: another Python than this one (the checked environment's)."""
    return Running(module, request, timeout=timeout, paths=paths, env=env, inhibit_ld_cache=inhibit_ld_cache,
                   group=group, executable=executable).wait()


class Running:
    """A child started now with the first part of its request (one JSON line on its stdin); :meth:`send`
    writes more parts while it works, :meth:`wait` ends its stdin and waits for its run.

    The torch child starts this way before the environment is read: its Python starts while the parent
    imports the engine, it loads torch's own libraries while the parent walks the linkage, and the rest of
    its request comes last.  ``steps`` names the steps sent so far.
    """

    def __init__(
        self,
        module: str,
        first: object,
        *,
        timeout: float,
        paths: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        inhibit_ld_cache: bool = False,
        group: ChildGroup | None = None,
        executable: str | None = None,
    ) -> None:
        command = [executable or sys.executable, "-c", _LAUNCHER.format(module=module)]
        loader = dynamic_loader() if inhibit_ld_cache else None
        if loader is not None:
            command = [loader, "--inhibit-cache", *command]
        self.command = tuple(command)
        self.steps: tuple[str, ...] = ()
        self.timeout = timeout
        self.group = group
        self.token = secrets.token_hex(16)
        self.started = self.sent = time.monotonic()
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by wait)
        self._channel = tempfile.TemporaryFile()  # noqa: SIM115 (closed by wait)
        read_end, self._stdin = os.pipe()
        _widen_pipe(self._stdin)
        environment = {**child_environment(paths, env), CHANNEL_VARIABLE: f"{self._channel.fileno()} {self.token}"}
        try:
            self.process = (group or ChildGroup()).spawn(command, environment, stdin=read_end, output=self._output,
                                                         channel=self._channel.fileno())
        except BaseException:
            self._close()
            raise
        finally:
            os.close(read_end)
        self.send(first)

    def send(self, part: object, steps: Sequence[str] = ()) -> None:
        """One more part of the request, with the steps it adds; a child that has died (its run says how) is
        not written to."""
        self.steps += tuple(steps)
        self.sent = time.monotonic()
        if dataclasses.is_dataclass(part) and not isinstance(part, type):
            part = dataclasses.asdict(part)
        data = (json.dumps(part) + "\n").encode()
        try:
            while data and self._stdin >= 0:
                data = data[os.write(self._stdin, data):]
        except OSError:  # EPIPE: the child is gone; BrokenPipeError too
            pass

    def wait(self) -> ChildRun:
        """End the request, wait for the child's exit and read what it said.

        The child has ``timeout`` seconds from the last part of its request: a child started ahead
        waits for the parent's walk, which can take seconds on a large environment, and that is no
        time of its own.
        """
        try:
            self._end_request()
            try:
                exited = _wait_exit(self.process, self.sent + self.timeout - time.monotonic())
            finally:
                _kill_group(self.process)  # what it left running in its group (a forked background process) goes too
                self.process.wait()
                if self.group is not None:
                    self.group.forget(self.process)
            elapsed = time.monotonic() - self.started
            self._channel.seek(0)
            results, begun, finished = _events(self._channel.read(_PROTOCOL_CAP), self.token)
            self._output.seek(max(0, self._output.seek(0, os.SEEK_END) - _STDERR_TAIL))
            tail = self._output.read().decode("utf-8", "replace")
        finally:
            self._close()
        return ChildRun(self.command, results, begun, finished, self.process.returncode if exited else None,
                        not exited, self.timeout, elapsed, tail)

    def _end_request(self) -> None:
        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1

    def _close(self) -> None:
        self._end_request()
        self._output.close()
        self._channel.close()


def _widen_pipe(fd: int) -> None:
    """A 1 MiB pipe (Linux's F_SETPIPE_SZ, best effort): every request fits without waiting for the child to read."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for the child itself to exit (not reaped, so that its process group id stays its own until
    :func:`_kill_group`); False when ``timeout`` passed first.

    A pidfd (Linux 5.3) wakes the parent the moment the child exits; elsewhere ``waitid`` is polled.
    """
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # Python < 3.9, an older kernel, or a seccomp filter
        pidfd = -1
    if pidfd >= 0:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll(max(0, int((deadline - time.monotonic()) * 1000) + 1))  # readable once the child exited
        finally:
            os.close(pidfd)
    pause = 0.001
    while True:
        if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _events(out: bytes, token: str) -> tuple[dict[str, JsonObject], tuple[str, ...], bool]:
    """(each ended step's data, the steps begun in order, whether ``done`` came) from the protocol lines
    that carry this run's token; any other line is ignored."""
    results: dict[str, JsonObject] = {}
    begun: list[str] = []
    finished = False
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("token") != token:
            continue
        if "begin" in event:
            begun.append(str(event["begin"]))
        elif "end" in event:
            data = event.get("data")
            results[str(event["end"])] = data if isinstance(data, dict) else {}
        elif event.get("done"):
            finished = True
    return results, tuple(begun), finished


@dataclass(frozen=True)
class Blame:
    """A step that a child was in when it crashed, hung or exited, and how."""

    trouble: str
    stderr: tuple[str, ...]


@dataclass(frozen=True)
class StepRuns:
    """What the children of :func:`run_steps` answered per step, the blame of each step one died in,
    and the last child's whole run (for what it did after the steps)."""

    results: dict[str, JsonObject]
    blamed: dict[str, Blame]
    last: ChildRun | None

    def answer(self, cls: type[T], step: str) -> T | Blame:
        return decoded(cls, step, self.results, self.blamed)


def run_steps(
    module: str,
    steps: Sequence[str],
    request: Callable[[list[str], Mapping[str, JsonObject]], object],
    *,
    timeout: float,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
    then: bool = False,
    started: Running | None = None,
) -> StepRuns:
    """Run ``steps`` in children until every one has a result or the blame for a dead child.

    ``request(pending, results)`` builds a child's request for the steps still to do,
    knowing what the earlier children answered.  The step in progress when a child dies is
    blamed and a new child goes on with the steps after it; a child that dies outside the
    listed steps (between them, or in a prelude the request adds) blames every step left.
    With ``then`` the child has work of its own after the steps (the torch child imports
    torch): a new child is started for it even when the last step is the one blamed.

    ``started`` is a first child already at work on the first of ``steps`` (its ``steps``): it is
    sent the request for the others as the last part of its own.
    """
    results: dict[str, JsonObject] = {}
    blamed: dict[str, Blame] = {}
    pending = list(steps)
    launch = partial(run_probe, module, timeout=timeout, paths=paths, env=env, inhibit_ld_cache=inhibit_ld_cache,
                     group=group)
    run: ChildRun | None = None
    while pending or (then and run is None):
        if started is not None:
            run, started = _finish_started(started, request, pending, results), None
        else:
            run = launch(request(pending, results))
        results.update({name: data for name, data in run.results.items() if name in pending})
        trouble = run.trouble()
        if trouble is None:
            break
        if run.current not in pending:  # died between the steps or in a prelude: every step left is blamed
            blamed.update(_blame_left(run, trouble, pending, results))
            break
        blamed[run.current] = Blame(trouble, run.stderr_tail())
        pending = [step for step in pending[pending.index(run.current) + 1:] if step not in results]
        if then and not pending:
            run = None  # the work after the steps is still to do
    return StepRuns(results, blamed, run)


def _finish_started(started: Running, request: Callable[[list[str], Mapping[str, JsonObject]], object],
                    pending: list[str], results: Mapping[str, JsonObject]) -> ChildRun:
    """Send a child already at work the request for the steps it was not given, and wait for it."""
    started.send(request([step for step in pending if step not in started.steps], results))
    return started.wait()


def _blame_left(run: ChildRun, trouble: str, pending: list[str], results: Mapping[str, JsonObject]) -> dict[str, Blame]:
    """The blame of every pending step without a result, for a child that died outside them."""
    where = f" while in {run.current}" if run.current else ""
    return {step: Blame(trouble + where, run.stderr_tail()) for step in pending if step not in results}


def decoded(cls: type[T], step: str, results: Mapping[str, JsonObject], blamed: Mapping[str, Blame]) -> T | Blame:
    """A step's answer as its protocol dataclass, or the blame for it: the child died in it, never answered,
    or answered something that is not a ``cls`` (a library wrote to the protocol's descriptor?)."""
    if step in blamed:
        return blamed[step]
    if step not in results:
        return Blame("ended without answering this step", ())
    try:
        return decode(cls, results[step])
    except ProtocolError as exc:
        return Blame(f"answered garbled data ({exc})", ())


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
