"""Every speed and memory goal of the plugin, measured side by side in one run on the real torch venv.

Each command runs as a fresh process, interleaved round by round with the others, so that
the disk cache and the machine's load touch them alike; the medians, their ratios and the
goals are printed.  CPU time is the process's and its children's (``wait4``); the pytest
process's peak memory is its own ``ru_maxrss``, the children's is reported apart.

    python benchmarks/speed.py [--venv ~/.cache/pytest-cudadeps/torch-2.14.1] [--rounds 5]
                               [--with-jax ~/.cache/pytest-cudadeps/torch-2.14.1-jax]

The goals (issue 11): the whole run <= 1.1 x ``import torch`` wall and <= 1.5 x its CPU time;
the static run (``--cuda-deps-no-probes``) <= 0.2 x its wall; pytest with the plugin installed
but off <= 1.03 x pytest without it; the pytest process <= 150 MB; collection stays linear in the
requirements (a root asking for 20,000 wheels collects in at most 12 x the time of one asking for 2,000;
it took 3.7 s on this machine when the issue was filed).  With ``--with-jax`` (a copy of the torch venv
with ``pip install 'jax[cuda13]'`` in it; used when it exists), the run with torch and jax as roots, whose children
import each side by side, <= 1.15 x the slower of ``import torch`` and ``import jax; jax.devices()`` there (issue 17).

pytest runs from a venv made for the benchmark, with this project installed in it as a user installs
it (``pip install .``: a wheel, byte-compiled; not the editable install of a checkout, whose import
hook every process pays for, nor sources compiled anew in each run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path

ENV = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "PYTHON"))}
PROJECT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CUDADEPS_VENV_CACHE", Path.home() / ".cache" / "pytest-cudadeps"))
DEFAULT_VENV = CACHE / "torch-2.14.1"
DEFAULT_WITH_JAX = CACHE / "torch-2.14.1-jax"
# pytest run in a process that reports its own peak memory and its children's at exit (on stderr)
PYTEST = (
    "import atexit, resource, runpy, sys\n"
    "def peak():\n"
    "    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "    print(f'PEAK {own.ru_maxrss} {kids.ru_maxrss}', file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv = ['pytest', *sys.argv[1:]]\n"
    "runpy.run_module('pytest', run_name='__main__', alter_sys=True)\n"
)


@dataclass
class Runs:
    """The measurements of one command over the rounds."""

    label: str
    command: list[str]
    wall: list[float]
    cpu: list[float]
    peak_kb: list[int]
    children_kb: list[int]

    def median(self, values: list[float] | list[int]) -> float:
        return statistics.median(values) if values else float("nan")


def run_once(runs: Runs, cwd: Path) -> None:
    """One run: wall time, CPU time of the process and its children (wait4), and the peaks it reports."""
    started = time.perf_counter()
    process = subprocess.Popen(runs.command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=ENV)
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)  # reaped here, not by Popen: its rusage is this run's alone
    process.returncode = os.waitstatus_to_exitcode(status)
    runs.wall.append(time.perf_counter() - started)
    runs.cpu.append(usage.ru_utime + usage.ru_stime)
    for line in err.decode(errors="replace").splitlines():
        if line.startswith("PEAK "):
            own, kids = line.split()[1:3]
            runs.peak_kb.append(int(own))
            runs.children_kb.append(int(kids))


def installed(work: Path) -> str:
    """A fresh venv with this project installed as users install it; its python."""
    venv.create(work / "venv", with_pip=True)
    python = str(work / "venv" / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(PROJECT)], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--with-jax", type=Path, default=DEFAULT_WITH_JAX)
    args = parser.parse_args()
    site = next(iter(sorted((args.venv / "lib").glob("python3*/site-packages"))), None)
    if site is None:
        sys.exit(f"no site-packages in {args.venv}: build it first (pytest --integration builds it)")
    with tempfile.TemporaryDirectory() as work:
        cwd = Path(work)
        here = installed(cwd)
        (cwd / "test_nothing.py").write_text("def test_nothing():\n    assert True\n")
        # the venv holds pytest, this plugin and its dependencies: pytest loads the plugin through its entry
        # point, as on a user's machine; "plugin absent" blocks it by that name
        plugin = [here, "-c", PYTEST, "-q", "-p", "no:cacheprovider", "--cuda-deps-only", f"--cuda-deps-path={site}"]
        commands = {
            "import torch": [str(args.venv / "bin" / "python"), "-c", "import torch"],
            "whole run": plugin,
            "static run": [*plugin, "--cuda-deps-no-probes"],
            "plugin off": [here, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_nothing.py"],
            "plugin absent": [here, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:cudadeps", "test_nothing.py"],
        }
        commands.update(_with_jax(args.with_jax, here))
        for count in REQUIREMENT_COUNTS:  # collection, linear in the requirements: a root asking for N wheels
            collect = [here, "-c", PYTEST, "-q", "-p", "no:cacheprovider", "--co", "--cuda-deps-only",
                       "--cuda-deps-no-probes", f"--cuda-deps-path={requirement_site(cwd, count)}"]
            commands[f"{count:,} reqs"] = collect
        results = {label: Runs(label, command, [], [], [], []) for label, command in commands.items()}
        for runs in results.values():  # warm the disk cache once, unmeasured
            subprocess.run(runs.command, cwd=cwd, capture_output=True, env=ENV)
        for _ in range(args.rounds):
            for label, runs in results.items():
                for _ in range(REPEATS.get(label, 1)):
                    run_once(runs, cwd)
    report(results, args.rounds)


# The short runs differ by milliseconds, less than this machine's jitter between two runs: each is
# repeated within a round, so that their medians rest on several times as many runs.
REPEATS = {"static run": 3, "plugin off": 7, "plugin absent": 7}


REQUIREMENT_COUNTS = (2_000, 20_000)


def _with_jax(venv: Path, here: str) -> dict[str, list[str]]:
    """The commands of the torch-and-jax row, when that venv exists."""
    site = next(iter(sorted((venv / "lib").glob("python3*/site-packages"))), None)
    if site is None:
        return {}
    python = str(venv / "bin" / "python")
    return {
        "torch, jax venv": [python, "-c", "import torch"],
        "jax + devices": [python, "-c", "import jax; jax.devices()"],  # its CUDA plugin opens its libraries then
        "torch + jax run": [here, "-c", PYTEST, "-q", "-p", "no:cacheprovider", "--cuda-deps-only",
                            f"--cuda-deps-path={site}"],
    }


def requirement_site(work: Path, count: int) -> Path:
    """A folder holding one distribution that requires ``count`` nvidia-* wheels, none installed: one
    ``requires[...]`` item each, so that collection does the walk, the items and their causes ``count`` times."""
    site = work / f"site-{count}"
    meta = site / "bigroot-1.0.dist-info"
    meta.mkdir(parents=True)
    requires = "".join(f"Requires-Dist: nvidia-lib{index}==1.0\n" for index in range(count))
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bigroot\nVersion: 1.0\n{requires}")
    (meta / "RECORD").write_text("")
    return site


def report(results: dict[str, Runs], rounds: int) -> None:
    whole, static = results["whole run"], results["static run"]
    wall = {label: runs.median(runs.wall) for label, runs in results.items()}
    cpu = {label: runs.median(runs.cpu) for label, runs in results.items()}
    print(f"medians of {rounds} interleaved rounds ({', '.join(f'{k} x{v}' for k, v in REPEATS.items())} a round), "
          f"{os.cpu_count()} cores")
    fastest = {label: min(runs.wall) for label, runs in results.items()}
    for label in results:
        print(f"  {label:14} {wall[label]:6.3f} s wall  {cpu[label]:6.3f} s CPU  (fastest {fastest[label]:.3f} s)")
    rows = [
        ("whole run / import torch, wall", wall["whole run"] / wall["import torch"], 1.1),
        ("whole run / import torch, CPU", cpu["whole run"] / cpu["import torch"], 1.5),
        ("static run / import torch, wall", wall["static run"] / wall["import torch"], 0.2),
        ("plugin off / plugin absent, wall", wall["plugin off"] / wall["plugin absent"], 1.03),
        # the two differ by a few milliseconds, this machine's jitter between two runs is more: the fastest
        # runs (the least disturbed, as timeit takes them) are the steadier comparison
        ("plugin off / absent, fastest runs", fastest["plugin off"] / fastest["plugin absent"], 1.03),
    ]
    small, large = (f"{count:,} reqs" for count in REQUIREMENT_COUNTS)
    rows.append((f"collection, {large} / {small}", wall[large] / wall[small], 12.0))  # linear: about 10
    if "torch + jax run" in wall:
        slowest = max(wall["torch, jax venv"], wall["jax + devices"])
        rows.append(("torch + jax run / slower import, wall", wall["torch + jax run"] / slowest, 1.15))
    for name, ratio, goal in rows:
        print(f"{name:36} {ratio:6.3f}  (goal <= {goal}: {'met' if ratio <= goal else 'NOT met'})")
    peak = whole.median(whole.peak_kb) / 1024
    print(f"{'pytest process peak memory':36} {peak:5.0f} MB (goal <= 150: {'met' if peak <= 150 else 'NOT met'}); "
          f"its children's peak {whole.median(whole.children_kb) / 1024:.0f} MB (apart)")
    print(f"{'static run peak memory':36} {static.median(static.peak_kb) / 1024:5.0f} MB")


if __name__ == "__main__":
    main()
