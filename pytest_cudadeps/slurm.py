"""``cudadeps-slurm-health``: the checks as a Slurm ``HealthCheckProgram`` that drains a broken node and resumes it.

slurmd starts its ``HealthCheckProgram`` as root, with no arguments, with ``SLURMD_NODENAME`` as
its whole environment (no ``PATH``, ``HOME`` or ``SLURM_CONF``), kills it after 60 s and starts
the next run every ``HealthCheckInterval`` seconds even while the last one still runs; its exit
status changes nothing.  So this program:

- checks the environment it is installed in (``python -m pytest_cudadeps`` run by its own
  interpreter, in ``/``, with a JSON report in a temporary folder), and kills the check (its
  whole process group) after ``timeout`` seconds (40 by default, at most 45: with ``sinfo`` and
  ``scontrol``, 5 s each at most, a run ends within slurmd's 60 s);
- takes a lock (``flock``, non-blocking): a run that finds it held exits 0 at once;
- on a broken environment drains its node with
  ``scontrol update nodename=NODE state=drain reason="cudadeps: <root causes>"``, and when the
  environment is healthy again resumes the node only if its reason starts with ``cudadeps:``, as
  NHC does: a node an admin drained for something else stays drained;
- finds ``scontrol`` and ``sinfo`` by absolute path (``slurm_bin``, else ``/usr/bin``,
  ``/usr/local/bin``, ``/opt/slurm/bin``).

Its configuration comes from a file, never from the environment: ``cudadeps-slurm.conf`` beside
the program (the venv's ``bin/``), else ``/etc/cudadeps/slurm.conf``; no file means the defaults.
``key = value`` lines, ``#`` comments::

    args = --cuda-deps-require-gpu        # options of python -m pytest_cudadeps (shell words)
    timeout = 40                          # seconds for the check, at most 45
    lock = /run/cudadeps-slurm-health.lock
    slurm_conf = /etc/slurm/slurm.conf    # given to scontrol and sinfo as SLURM_CONF
    slurm_bin = /usr/bin                  # the folder of scontrol and sinfo
    unknown = drain                       # could not check (timeout, crash): drain, or ignore
    output = /var/log/cudadeps-slurm-health.log   # the last check's whole output

Other uses of the same program: ``--prolog`` (or run as a ``Prolog``, where slurmd sets
``SLURM_SCRIPT_CONTEXT=prolog_slurmd``) only exits 0 or 1, and Slurm drains the node with
"Prolog error" on 1; ``--status`` prints the verdict line and exits 0 healthy, 1 broken, 2 could not
check: NHC's ``check_cmd_status`` command.  Neither touches the node's state.
"""

from __future__ import annotations

import configparser
import fcntl
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pytest_cudadeps.core.report_format import ReportError, read_report

PROGRAM = "cudadeps-slurm-health"
CONF_NAME = "cudadeps-slurm.conf"
SYSTEM_CONF = Path("/etc/cudadeps/slurm.conf")
PREFIX = "cudadeps:"
SLURM_BIN = ("/usr/bin", "/usr/local/bin", "/opt/slurm/bin")
MAX_TIMEOUT = 45.0  # slurmd kills its health check after 60 s; sinfo and scontrol take 5 s at most each
SLURM_TIMEOUT = 5.0
REASON_LIMIT = 80
HEALTHY, BROKEN, UNKNOWN = 0, 1, 2
_KEYS = {"args", "timeout", "lock", "slurm_conf", "slurm_bin", "unknown", "output"}


class ConfigError(Exception):
    """A configuration file that cannot be used: its path and what is wrong."""


@dataclass(frozen=True)
class Settings:
    """The configuration (see the module docstring), with where it came from."""

    args: tuple[str, ...] = ()
    timeout: float = 40.0
    lock: str = "/run/cudadeps-slurm-health.lock"
    slurm_conf: str | None = None
    slurm_bin: str | None = None
    unknown: str = "drain"
    output: str | None = None
    source: str = "defaults"


@dataclass(frozen=True)
class Outcome:
    """What the check said: its status (0, 1, 2), its verdict line and the ids of the root causes."""

    status: int
    line: str
    causes: tuple[str, ...] = field(default=())


def config_paths(program: str) -> list[Path]:
    """Where the configuration is looked for, in order: beside the program, then the system's file."""
    return [Path(program).parent / CONF_NAME, SYSTEM_CONF]


def load_settings(paths: Sequence[Path]) -> Settings:
    """The first file of ``paths`` that exists, read; the defaults when none does."""
    for path in paths:
        if path.is_file():
            return parse_settings(path.read_text(encoding="utf-8"), str(path))
    return Settings()


def parse_settings(text: str, source: str) -> Settings:
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",), interpolation=None)
    try:
        parser.read_string("[cudadeps]\n" + text, source)
    except configparser.Error as exc:
        raise ConfigError(f"{source}: {exc.message.splitlines()[0]}") from None
    values = dict(parser["cudadeps"])
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    try:
        timeout = float(values.get("timeout", Settings.timeout))
        args = tuple(shlex.split(values.get("args", "")))
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError(f"{source}: timeout must be above 0 and at most {MAX_TIMEOUT:g} s, not {timeout:g}")
    if values.get("unknown", "drain") not in ("drain", "ignore"):
        raise ConfigError(f"{source}: unknown must be drain or ignore, not {values['unknown']!r}")
    return Settings(args=args, timeout=timeout, lock=values.get("lock", Settings.lock),
                    slurm_conf=values.get("slurm_conf"), slurm_bin=values.get("slurm_bin"),
                    unknown=values.get("unknown", "drain"), output=values.get("output"), source=source)


# --- the check ----------------------------------------------------------------------------------------


def run_check(settings: Settings, python: str) -> Outcome:
    """``python -m pytest_cudadeps`` with a JSON report, killed (its process group) after ``settings.timeout``."""
    with tempfile.TemporaryDirectory(prefix="cudadeps-slurm-") as folder:
        report = Path(folder) / "report.json"
        command = [python, "-m", "pytest_cudadeps", f"--cuda-deps-json={report}", *settings.args]
        # in /, so that the working directory (an empty DT_RUNPATH entry) is the same on every node
        child = subprocess.Popen(command, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = child.communicate(timeout=settings.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return Outcome(UNKNOWN, f"cudadeps: could not check: no verdict within {settings.timeout:g} s", ("timeout",))
        text = output.decode("utf-8", "replace")
        _keep_output(settings.output, text)
        return outcome_of(child.returncode, text, report)


def outcome_of(returncode: int, output: str, report: Path) -> Outcome:
    """The check's status, its first line and the root causes its report names."""
    line = next(iter(output.splitlines()), "").strip() or f"cudadeps: could not check: exit status {returncode}"
    if returncode not in (HEALTHY, BROKEN):
        return Outcome(UNKNOWN, line)
    try:
        causes = read_report(report).get("causes", [])
    except ReportError as exc:
        return Outcome(UNKNOWN, f"cudadeps: could not check: {exc}")
    ids = tuple(str(cause.get("id")) for cause in causes if isinstance(cause, dict))
    return Outcome(returncode, line, ids)


def _keep_output(path: str | None, text: str) -> None:
    if not path:
        return
    target = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.", delete=False) as out:
        out.write(text)
    os.replace(out.name, target)


# --- the node -----------------------------------------------------------------------------------------


def reason_for(outcome: Outcome) -> str:
    """The drain reason: the prefix and the root causes in the few words ``sinfo -R`` shows."""
    if outcome.status == UNKNOWN:
        words = "could not check" + (f" ({', '.join(outcome.causes)})" if outcome.causes else "")
    else:
        words = ", ".join(outcome.causes[:2]) or "a check failed"
        words += f" +{len(outcome.causes) - 2} more" if len(outcome.causes) > 2 else ""
    reason = f"{PREFIX} {words}"
    return reason if len(reason) <= REASON_LIMIT else reason[:REASON_LIMIT - 3] + "..."


def decide(outcome: Outcome, state: str, reason: str, unknown: str = "drain") -> str | None:
    """``drain``, ``resume`` or nothing, for a node in ``state`` (sinfo ``%T``) with ``reason`` (``%E``).

    Only a drain of ours (the reason starts with ``cudadeps:``) is ever resumed or re-worded.
    """
    drained, ours = state.startswith("drain"), reason.startswith(PREFIX)
    broken = outcome.status == BROKEN or (outcome.status == UNKNOWN and unknown == "drain")
    if broken:
        return "drain" if not drained or (ours and reason != reason_for(outcome)) else None
    if outcome.status == HEALTHY and drained and ours:
        return "resume"
    return None


@dataclass(frozen=True)
class Slurm:
    """``sinfo`` and ``scontrol`` by absolute path, with ``SLURM_CONF`` when configured."""

    bin: Path
    conf: str | None

    def _run(self, *argv: str) -> str:
        env = {"SLURM_CONF": self.conf} if self.conf else {}
        done = subprocess.run([str(self.bin / argv[0]), *argv[1:]], capture_output=True, text=True, env=env,
                              timeout=SLURM_TIMEOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise OSError(f"{argv[0]} {argv[1]} failed (status {done.returncode}): "
                          f"{(done.stderr.strip().splitlines() or [''])[-1]}")
        return done.stdout  # only stdout: configuration warnings go to stderr

    def state(self, node: str) -> tuple[str, str]:
        """The node's state and reason, as ``sinfo -o '%T|%E'`` prints them (``drained``, ``cudadeps: ...``)."""
        line = self._run("sinfo", "-h", "-N", "-n", node, "-o", "%T|%E").strip().splitlines()
        if not line:
            raise OSError(f"sinfo does not know the node {node!r}")
        state, _, reason = line[0].partition("|")
        return state, reason

    def drain(self, node: str, reason: str) -> None:
        self._run("scontrol", "update", f"nodename={node}", "state=drain", f"reason={reason}")

    def resume(self, node: str) -> None:
        self._run("scontrol", "update", f"nodename={node}", "state=resume")


def find_slurm(settings: Settings) -> Slurm:
    folders = [settings.slurm_bin] if settings.slurm_bin else list(SLURM_BIN)
    for folder in folders:
        if os.access(Path(folder) / "scontrol", os.X_OK):
            return Slurm(Path(folder), settings.slurm_conf)
    raise OSError(f"no scontrol in {', '.join(folders)} (set slurm_bin)")


def act(slurm: Slurm, node: str, outcome: Outcome, unknown: str) -> str:
    """Drain or resume ``node`` as :func:`decide` says; what was done, in words."""
    state, reason = slurm.state(node)
    action = decide(outcome, state, reason, unknown)
    if action == "drain":
        slurm.drain(node, reason_for(outcome))
        return f"drained {node}"
    if action == "resume":
        slurm.resume(node)
        return f"resumed {node}, {state} for {reason}"
    return f"left {node} {state}" + (f" for {reason}" if reason and reason != "none" else "")


@contextmanager
def exclusive(path: str) -> Iterator[bool]:
    """Holds the lock at ``path`` while the block runs; False (at once) when another run holds it."""
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


# --- the program --------------------------------------------------------------------------------------


def _mode(args: Sequence[str]) -> str | None:
    if not args:
        return "prolog" if os.environ.get("SLURM_SCRIPT_CONTEXT") == "prolog_slurmd" else "health"
    return {"--prolog": "prolog", "--status": "status"}.get(args[0]) if len(args) == 1 else None


def health(settings: Settings, python: str) -> int:
    """One HealthCheckProgram run: check, then drain or resume the node."""
    with exclusive(settings.lock) as mine:
        if not mine:
            print(f"{PROGRAM}: another run holds {settings.lock}")
            return HEALTHY
        slurm = find_slurm(settings)
        outcome = run_check(settings, python)
        node = os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]
        print(f"{outcome.line} ({act(slurm, node, outcome, settings.unknown)})")  # one line in slurmd.log
        return HEALTHY if outcome.status == HEALTHY else BROKEN


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    mode = _mode(args)
    if mode is None:
        print(f"usage: {PROGRAM} [--prolog | --status]  (configuration: {' or '.join(map(str, config_paths(sys.argv[0])))})")
        return UNKNOWN
    python = sys.executable or str(Path(sys.prefix) / "bin" / "python")  # '' when started with no PATH
    try:
        settings = load_settings(config_paths(sys.argv[0]))
        if mode == "health":
            return health(settings, python)
        outcome = run_check(settings, python)
    except (ConfigError, OSError, subprocess.SubprocessError) as exc:
        print(f"{PROGRAM}: could not check: {exc}")
        return UNKNOWN
    print(outcome.line)
    if mode == "prolog":
        return BROKEN if outcome.status == BROKEN or (outcome.status == UNKNOWN and settings.unknown == "drain") else HEALTHY
    return outcome.status
