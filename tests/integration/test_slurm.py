"""``cudadeps-slurm-health`` as the HealthCheckProgram of a real Slurm (Debian's 22.05 slurmctld, slurmd and munged
on localhost, :mod:`tests.support.slurm`), checking a hard-link copy of the real torch 2.14.1 venv it is installed in.

Needs root and ``apt-get install slurmd slurmctld slurm-client munge`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support import slurm, venvs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not slurm.slurm_available(), reason="needs root and slurmd, slurmctld, slurm-client, munge"),
]

PROJECT = Path(__file__).resolve().parents[2]


def run_as_printed(fix: str) -> subprocess.CompletedProcess[str]:
    """The fix exactly as printed, from a shell whose PATH has no venv (slurmd gives its programs none)."""
    return subprocess.run(["/bin/sh", "-c", f"{fix} -q"], env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
                          capture_output=True, text=True, timeout=900)


def replaced_after(path: Path, stamp: int, timeout_s: float = 120) -> int:
    """Waits until the health check has written its output file anew (it is replaced by each run)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns != stamp:
            return path.stat().st_mtime_ns
        time.sleep(0.2)
    raise TimeoutError(f"{path} was not written again in {timeout_s} s")


def logged_runs(work: Path, ending: str, timeout_s: float = 90) -> list[str]:
    """slurmd's ``health_check failed`` lines, once one ends with ``ending`` (or all of them at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = work / "log" / "slurmd.log"
        logged = [line for line in log.read_text().splitlines() if "health_check failed" in line] if log.exists() else []
        if any(line.endswith(ending) for line in logged) or time.monotonic() >= deadline:
            return logged
        time.sleep(0.5)


def fix_line(output: Path) -> str:
    fixes = [line.strip()[len("fix: "):] for line in output.read_text().splitlines() if line.strip().startswith("fix: ")]
    assert fixes, output.read_text()[-3000:]
    return fixes[-1]  # the cudadeps summary's, below the root cause


@pytest.fixture(scope="module")
def venv(cuda_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hard-link copy of the real venv with this project installed into it; each test leaves it intact."""
    copied = venvs.copy_venv(cuda_venv, tmp_path_factory.mktemp("slurm") / "venv")
    installed = venvs.pip(copied, "install", "-q", str(PROJECT))
    assert installed.returncode == 0, installed.stderr[-3000:]
    return copied


def configure(venv: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """The program's configuration beside it (slurmd gives it no SLURM_CONF, PATH or arguments): the program,
    the cluster's folder and the file that keeps the last check's output."""
    work, output = tmp_path / "slurm", tmp_path / "check.out"
    conf = venv / "bin" / "cudadeps-slurm.conf"
    conf.unlink(missing_ok=True)  # a new file, never one written in place
    conf.write_text("args = --cuda-deps-no-probes  # the missing wheel is found without running anything\n"
                    f"lock = {tmp_path / 'check.lock'}\nslurm_conf = {work / 'etc' / 'slurm.conf'}\noutput = {output}\n")
    return venv / "bin" / "cudadeps-slurm-health", work, output


def test_a_broken_venv_drains_the_node_its_repair_resumes_it_and_an_admins_drain_stays(
        venv: Path, tmp_path: Path) -> None:
    program, work, output = configure(venv, tmp_path)
    with slurm.start_cluster(work, str(program), interval_s=1) as cluster:
        stamp = replaced_after(output, 0)
        assert cluster.node_state() == ("idle", "none"), output.read_text()[-3000:]

        assert venvs.pip(venv, "uninstall", "-y", "nvidia-cublas").returncode == 0
        cluster.wait_for(lambda state: state[0] == "drained", timeout_s=120)
        # a run that began during the uninstall may have seen a half-removed wheel: the next one re-words its reason
        cluster.wait_for(lambda state: state == ("drained", "cudadeps: requires[torch>nvidia-cublas]"), timeout_s=60)
        sinfo = cluster.run("sinfo", "-R").stdout
        assert "cudadeps: requires[t root" in sinfo  # sinfo -R shows 20 characters of the reason
        print(f"$ sinfo -R\n{sinfo}$ sinfo -R -o '%50E %N'\n{cluster.run('sinfo', '-R', '-o', '%50E %N').stdout}")
        # slurmd logs a run's output when it exits 1: after the run drained the node, so the line may come later
        drained = f"output:cudadeps: 5 failed checks from 1 root cause: requires[torch>nvidia-cublas] (drained {cluster.nodename})"
        logged = logged_runs(work, drained)
        assert any(line.endswith(drained) for line in logged), logged
        print(next(line for line in logged if line.endswith(drained)))

        fix = fix_line(output)
        # slurmd gives the health check no PATH: the fix names the venv's interpreter, and runs as printed
        assert fix == f"'{venv / 'bin' / 'python'}' -m pip install 'nvidia-cublas==13.1.1.3.*'"
        repaired = run_as_printed(fix)
        assert repaired.returncode == 0, repaired.stderr[-3000:]
        cluster.wait_for(lambda state: state == ("idle", "none"), timeout_s=120)

        cluster.drain("admin: new PSU")
        stamp = replaced_after(output, output.stat().st_mtime_ns)
        replaced_after(output, stamp)  # two whole runs saw the admin's drain on a healthy venv
        assert cluster.node_state() == ("drained", "admin: new PSU")
        pids = list(cluster.pids().values())
    assert pids
    assert not [pid for pid in pids if slurm.alive(pid)]


def test_as_a_prolog_a_broken_venv_fails_the_job_and_slurm_drains_the_node(venv: Path, tmp_path: Path) -> None:
    program, work, output = configure(venv, tmp_path)
    with slurm.start_cluster(work, prolog=str(program)) as cluster:
        ran = cluster.run("srun", "-N1", "true", check=False)
        assert ran.returncode == 0, ran.stderr
        assert venvs.pip(venv, "uninstall", "-y", "nvidia-cublas").returncode == 0
        refused = cluster.run("srun", "-N1", "true", check=False)
        assert refused.returncode != 0
        assert "Job prolog failed" in refused.stderr
        cluster.wait_for(lambda state: state == ("drained", "Prolog error"), timeout_s=60)
        logged = (work / "log" / "slurmd.log").read_text()
        assert "prolog failed: rc:1 output:cudadeps: 5 failed checks from 1 root cause: requires[torch>nvidia-cublas]" \
            in logged
        repaired = run_as_printed(fix_line(output))
        assert repaired.returncode == 0, repaired.stderr[-3000:]
        cluster.resume()
        cluster.wait_for(lambda state: state == ("idle", "none"), timeout_s=60)
        again = cluster.run("srun", "-N1", "true", check=False)
        assert again.returncode == 0, again.stderr
