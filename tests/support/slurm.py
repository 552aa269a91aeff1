"""Single-node Slurm on localhost for integration tests (standard library only).

Starts a private munged, slurmctld and slurmd (Debian ``slurm-wlm`` 22.05 +
``munge``) with every file under ``workdir`` and stops every process it
started, by PID, never by name.  Needs root.

    from harness import start_cluster
    with start_cluster(tmp, health_check_program="/path/hc", interval_s=1) as c:
        c.wait_for(lambda st: st[0] == "drained", timeout_s=10)
        print(c.node_state())        # ("drained", "cudadeps: ...")

How the HealthCheckProgram finds the cluster: slurmd runs it with only
SLURMD_NODENAME and PWD in its environment and no arguments, so a
``scontrol``/``sinfo`` inside it looks for SLURM_CONF (unset), then
/etc/slurm/slurm.conf, then /run/slurm/conf/slurm.conf (22.05), then DNS SRV,
and fails with "Could not establish a configuration source".
``conf_exposure`` chooses how to make it find this cluster:

* ``"none"``    nothing (the program must find the conf itself, e.g. from
                ``Cluster.conf_path_file`` = ``workdir/SLURM_CONF``).
* ``"wrapper"`` HealthCheckProgram/Prolog point at a generated wrapper that
                exports SLURM_CONF (and nothing else) and execs the program.
* ``"run"``     symlink /run/slurm/conf/slurm.conf -> our conf (configless
                location; refused if /etc/slurm/slurm.conf exists, since
                that one wins).  Removed on stop.
* ``"etc"``     symlink /etc/slurm/slurm.conf -> our conf (refused if a real
                file is there).  Removed on stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

__all__ = ["Cluster", "ClusterError", "slurm_available", "start_cluster"]

RUN_CONF = Path("/run/slurm/conf/slurm.conf")
ETC_CONF = Path("/etc/slurm/slurm.conf")
_SOCK_MAX = 100  # sun_path is 108 bytes
_STATE_FILE = "harness-state.json"

NodeState = tuple[str, str]  # (sinfo %T, sinfo %E)


class ClusterError(RuntimeError):
    """The cluster could not be started (the message includes log tails)."""


def slurm_available() -> bool:
    """True when the binaries are installed and we are root."""
    need = ("munged", "slurmctld", "slurmd", "scontrol", "sinfo")
    return os.geteuid() == 0 and all(shutil.which(b, path=_PATH) for b in need)


_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_hardware() -> dict[str, str]:
    """Parse ``slurmd -C`` (NodeName=vm CPUs=2 Boards=1 ... RealMemory=N)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True,
                         check=True, env={"PATH": _PATH}).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    fields = dict(kv.split("=", 1) for kv in line.split())
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
            "ThreadsPerCore", "RealMemory")
    hw = {k: fields[k] for k in keep if k in fields}
    if "RealMemory" in hw:  # a little under the measured value: a node that
        # reports less than configured is drained "Low RealMemory"
        hw["RealMemory"] = str(int(int(hw["RealMemory"]) * 0.95))
    return hw


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(roots: Iterable[int]) -> list[int]:
    """PIDs of all live descendants of ``roots`` (via /proc/*/stat PPid)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out: list[int] = []
    todo = list(roots)
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _terminate(pids: Sequence[int], timeout_s: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL the given PIDs (only those still alive)."""
    live = [p for p in pids if alive(p)]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in live):
        time.sleep(0.1)
    for p in live:
        if alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


def _set_subreaper(on: bool) -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER): slurmd double-forks slurmstepd, which
    would otherwise be re-parented to PID 1 (and stay a zombie where PID 1
    does not reap, as in many containers) and escape _descendants()."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(36, 1 if on else 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _my_stepds() -> list[int]:
    """slurmstepd processes re-parented to this process (subreaper mode)."""
    me, out = os.getpid(), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            head, rest = (d / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        if int(rest.split()[1]) == me and head.endswith("(slurmstepd"):
            out.append(int(d.name))
    return out


def _reap(pids: Iterable[int]) -> None:
    for p in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p, os.WNOHANG)


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class Cluster:
    """A running single-node cluster; use :func:`start_cluster`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.conf_path = workdir / "etc" / "slurm.conf"
        self.conf_path_file = workdir / "SLURM_CONF"  # holds str(conf_path)
        self.log_dir = workdir / "log"
        self.nodename = socket.gethostname().split(".")[0]
        self.partition = "debug"
        self.munge_socket: Path = workdir / "munge" / "munge.sock"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._extra_dirs: list[Path] = []
        self._links: list[Path] = []
        self._made_dirs: list[Path] = []
        self._stopped = False
        self._subreaper = False

    # ----------------------------------------------------------- helpers
    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands (sinfo, scontrol, srun)."""
        e = dict(os.environ)
        e["SLURM_CONF"] = str(self.conf_path)
        e.setdefault("PATH", _PATH)
        return e

    def run(self, *argv: str, check: bool = True,
            timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.env, capture_output=True,
                              text=True, check=check, timeout=timeout_s)

    def node_state(self) -> NodeState:
        """(state, reason) from ``sinfo -h -n NODE -o '%T|%E'``."""
        out = self.run("sinfo", "-h", "-n", self.nodename, "-o", "%T|%E").stdout.strip()
        state, _, reason = out.partition("|")
        return state, reason

    def drain(self, reason: str) -> None:
        self.run("scontrol", "update", f"nodename={self.nodename}", "state=drain",
                 f"reason={reason}")

    def resume(self) -> None:
        self.run("scontrol", "update", f"nodename={self.nodename}", "state=resume")

    def wait_for(self, pred: Callable[[NodeState], bool], timeout_s: float = 30,
                 poll_s: float = 0.2) -> float:
        """Poll node_state until pred is true; return seconds waited."""
        t0 = time.monotonic()
        last: NodeState = ("", "")
        while time.monotonic() - t0 < timeout_s:
            try:
                last = self.node_state()
                if pred(last):
                    return time.monotonic() - t0
            except subprocess.CalledProcessError:
                pass
            time.sleep(poll_s)
        raise TimeoutError(f"node state still {last!r} after {timeout_s}s")

    def reconfigure(self, **conf_updates: str) -> None:
        """Rewrite keys in slurm.conf (e.g. HealthCheckInterval="1") and
        ``scontrol reconfigure``.  Note: reconfigure does NOT run the health
        check; the new interval counts from the last run."""
        lines = self.conf_path.read_text().splitlines()
        for k, v in conf_updates.items():
            lines = [line for line in lines if not line.startswith(f"{k}=")]
            lines.insert(0, f"{k}={v}")
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.run("scontrol", "reconfigure")

    def restart_slurmd(self, timeout_s: float = 30) -> None:
        """Restart slurmd: the only way found to run the health check *now*
        (slurmd runs it at start-up, before registering)."""
        p = self._procs.pop("slurmd", None)
        if p is not None:
            _terminate([p.pid])
            p.wait(timeout=5)
        self._start_slurmd()
        self.wait_for(lambda st: not st[0].endswith("*")
                      and st[0] not in ("unknown", "down"), timeout_s)

    def pids(self) -> dict[str, int]:
        return {k: p.pid for k, p in self._procs.items()}

    # --------------------------------------------------------- lifecycle
    def _save_state(self) -> None:
        data = {"pids": {k: p.pid for k, p in self._procs.items()},
                "dirs": [str(d) for d in self._extra_dirs],
                "links": [str(line) for line in self._links],
                "conf": str(self.conf_path)}
        (self.workdir / _STATE_FILE).write_text(json.dumps(data))

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.log_dir / f"{name}.stdout", "ab") as log:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 env={"PATH": _PATH}, cwd=str(self.log_dir))
        self._procs[name] = p
        self._save_state()

    def _check_alive(self, name: str, log: Path) -> None:
        p = self._procs[name]
        if p.poll() is not None:
            raise ClusterError(f"{name} exited with {p.returncode}:\n"
                               f"{_tail(self.log_dir / (name + '.stdout'))}\n{_tail(log)}")

    def _start_slurmd(self) -> None:
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf_path),
                               "-N", self.nodename])

    def stop(self) -> None:
        """Stop everything started (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):  # cancel our jobs: stepds exit cleanly
                self.run("scancel", "--partition", self.partition, check=False,
                         timeout_s=10)
        roots = [p.pid for p in self._procs.values()]
        stepds = _my_stepds() if self._subreaper else []
        roots += stepds
        kids = stepds + _descendants(roots)  # slurmstepd, job tasks, health checks
        for name in ("slurmd", "slurmctld", "munged"):
            p = self._procs.get(name)
            if p is not None:
                _terminate([p.pid])
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        _terminate(kids + _descendants(roots), timeout_s=5)
        if self._subreaper:
            _reap(stepds + _my_stepds())
            _set_subreaper(False)
            self._subreaper = False
        for link in self._links:
            if link.is_symlink():
                link.unlink()
        for d in self._made_dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
        for d in self._extra_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._procs.clear()
        self._save_state()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cleanup_stale(workdir: Path) -> None:
    """Kill leftovers of an earlier run in the same workdir (crash, ^C).

    Only PIDs recorded in workdir/harness-state.json whose command line still
    mentions that run's conf/socket are killed."""
    f = workdir / _STATE_FILE
    if not f.exists():
        return
    try:
        data = json.loads(f.read_text())
    except ValueError:
        return
    marks = [str(workdir), *list(data.get("dirs", []))]
    pids = [int(p) for p in data.get("pids", {}).values()
            if alive(int(p)) and any(m in _cmdline(int(p)) for m in marks)]
    _terminate(_descendants(pids) + pids)
    for link in data.get("links", []):
        lp = Path(link)
        if lp.is_symlink() and os.readlink(lp) == data.get("conf"):
            lp.unlink()
    for d in data.get("dirs", []):
        shutil.rmtree(d, ignore_errors=True)
    f.unlink()


def _write_wrapper(path: Path, target: str, conf: Path) -> str:
    path.write_text("#!/bin/sh\n"
                    f"SLURM_CONF='{conf}'\nexport SLURM_CONF\n"
                    f"exec '{target}' \"$@\"\n")
    path.chmod(0o755)
    return str(path)


def start_cluster(workdir: Path, health_check_program: str | None = None,
                  interval_s: int = 1, *, node_state: str = "ANY",
                  prolog: str | None = None,
                  conf_exposure: str = "none",
                  ready_states: Sequence[str] = ("idle",),
                  extra_conf: Sequence[str] = (),
                  timeout_s: float = 60,
                  subreaper: bool = True) -> Cluster:
    """Start munged, slurmctld and slurmd; wait until the node is in one of
    ``ready_states`` (pass e.g. ("idle", "drained") if the health check may
    drain it at once).  On any failure everything started is stopped and
    ClusterError/TimeoutError is raised.

    ``subreaper``: make this process a child subreaper (prctl) while the
    cluster runs, so slurmstepd (double-forked by slurmd) is re-parented here,
    found and killed by stop(), and reaped.  Side effect: any other orphaned
    grandchild of this process is re-parented here too until stop()."""
    if os.geteuid() != 0:
        raise ClusterError("root is needed (SlurmUser=root, slurmd)")
    if conf_exposure not in ("none", "wrapper", "run", "etc"):
        raise ValueError(conf_exposure)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _cleanup_stale(workdir)
    c = Cluster(workdir)
    c._subreaper = _set_subreaper(True) if subreaper else False
    try:
        _start(c, health_check_program, interval_s, node_state, prolog,
               conf_exposure, ready_states, extra_conf, timeout_s)
    except BaseException:
        c.stop()
        raise
    return c


def _start(c: Cluster, hc: str | None, interval_s: int, node_state: str,
           prolog: str | None, exposure: str, ready_states: Sequence[str],
           extra_conf: Sequence[str], timeout_s: float) -> None:
    w = c.workdir
    for sub in ("state", "spool"):  # fresh controller/node state every run
        shutil.rmtree(w / sub, ignore_errors=True)
    for sub in ("state", "spool", "log", "run", "etc", "munge"):
        (w / sub).mkdir(parents=True, exist_ok=True)
    for f in c.log_dir.iterdir():
        if f.is_file():
            f.unlink()

    deadline = time.monotonic() + timeout_s
    _start_munged(c, deadline)
    hc, prolog = _write_conf(c, hc, interval_s, node_state, prolog, exposure, extra_conf)
    if exposure in ("run", "etc"):
        _expose(c, exposure)
    _start_daemons(c, ready_states, deadline)


def _start_munged(c: Cluster, deadline: float) -> None:
    """munge: own key, socket, pid, seed; -F so we hold its PID."""
    w = c.workdir
    mdir = w / "munge"
    mdir.chmod(0o755)  # munged wants o+x on the socket directory
    if len(str(mdir / "munge.sock")) > _SOCK_MAX:
        sdir = Path(tempfile.mkdtemp(prefix="cdmunge-", dir="/tmp"))
        sdir.chmod(0o755)
        c._extra_dirs.append(sdir)
        c.munge_socket = sdir / "munge.sock"
    key = mdir / "munge.key"
    if not key.exists():
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(1024))
    # --force: tolerate a 0700 parent such as pytest's tmp_path (root only)
    c._spawn("munged", ["munged", "-F", "--force", f"--socket={c.munge_socket}",
                        f"--key-file={key}", f"--pid-file={mdir / 'munged.pid'}",
                        f"--seed-file={mdir / 'munged.seed'}",
                        f"--log-file={c.log_dir / 'munged.log'}"])
    while not c.munge_socket.exists():
        c._check_alive("munged", c.log_dir / "munged.log")
        if time.monotonic() > deadline:
            raise ClusterError("munged socket did not appear")
        time.sleep(0.05)



def _write_conf(c: Cluster, hc: str | None, interval_s: int, node_state: str, prolog: str | None, exposure: str,
                extra_conf: Sequence[str]) -> tuple[str | None, str | None]:
    w = c.workdir
    if exposure == "wrapper":
        if hc:
            hc = _write_wrapper(w / "etc" / "healthcheck-wrapper.sh", hc, c.conf_path)
        if prolog:
            prolog = _write_wrapper(w / "etc" / "prolog-wrapper.sh", prolog, c.conf_path)
    hw = _node_hardware()
    n = c.nodename
    lines = [
        "# generated by pytest-cudadeps slurm harness",
        "ClusterName=cudadeps",
        f"SlurmctldHost={n}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={c.munge_socket}",
        f"StateSaveLocation={w / 'state'}",
        f"SlurmdSpoolDir={w / 'spool'}",
        f"SlurmctldPidFile={w / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={w / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={c.log_dir / 'slurmctld.log'}",
        f"SlurmdLogFile={c.log_dir / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # no cgroup anywhere: works in containers/VMs without systemd
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ReturnToService=2",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "KillWait=2",
    ]
    if hc:
        lines += [f"HealthCheckProgram={hc}", f"HealthCheckInterval={int(interval_s)}",
                  f"HealthCheckNodeState={node_state}"]
    if prolog:
        lines.append(f"Prolog={prolog}")
    lines += list(extra_conf)
    hwtxt = " ".join(f"{k}={v}" for k, v in hw.items())
    lines += [f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname={n} {hwtxt} State=UNKNOWN",
              f"PartitionName={c.partition} Nodes={n} Default=YES MaxTime=INFINITE State=UP"]
    c.conf_path.write_text("\n".join(lines) + "\n")
    c.conf_path_file.write_text(str(c.conf_path) + "\n")
    return hc, prolog


def _expose(c: Cluster, exposure: str) -> None:
    if exposure in ("run", "etc"):
        link = RUN_CONF if exposure == "run" else ETC_CONF
        if exposure == "run" and ETC_CONF.exists():
            raise ClusterError(f"{ETC_CONF} exists and would win over {RUN_CONF}")
        if link.exists() or link.is_symlink():
            raise ClusterError(f"{link} already exists; not overwriting it")
        missing = [p for p in (link.parent.parent, link.parent) if not p.exists()]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(c.conf_path)
        c._links.append(link)
        c._made_dirs = missing[::-1]  # innermost first, removed if empty
        c._save_state()


def _start_daemons(c: Cluster, ready_states: Sequence[str], deadline: float) -> None:
    # ---- slurmctld, then slurmd (-D: foreground, so we hold the real PID)
    c._spawn("slurmctld", ["slurmctld", "-D", "-f", str(c.conf_path)])
    while True:
        c._check_alive("slurmctld", c.log_dir / "slurmctld.log")
        if c.run("scontrol", "ping", check=False).returncode == 0:
            break
        if time.monotonic() > deadline:
            raise ClusterError("slurmctld did not answer ping:\n"
                               + _tail(c.log_dir / "slurmctld.log"))
        time.sleep(0.1)
    c._start_slurmd()
    last: NodeState = ("", "")
    while True:
        c._check_alive("slurmd", c.log_dir / "slurmd.log")
        with contextlib.suppress(subprocess.CalledProcessError):
            last = c.node_state()
        if last[0] in ready_states:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"node state {last!r} not in {ready_states}:\n"
                               + _tail(c.log_dir / "slurmd.log")
                               + "\n" + _tail(c.log_dir / "slurmctld.log"))
        time.sleep(0.1)
