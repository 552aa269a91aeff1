"""The declared-dependency check against ``pip check``, side by side on the real torch 2.14.1 venv.

Both are timed as a user meets them, a whole process each, in the same run and interleaved
(the order alternates every round, so neither always runs on a warm cache):

- declared: this checkout's Python takes a snapshot without the ELF view and runs ``declared_findings()``
  on the venv's site-packages (the torch venv has no pytest; the engine needs none);
- pip check: ``<venv>/bin/python -m pip check``.

It also times the engine alone in this process (cold first call, then warm calls), and one
whole ``pytest --cuda-deps-only --cuda-deps-no-probes`` run on the venv for reference (every static check, not
only the declared one; not part of the ratio).  The goal: declared / pip check <= 0.5.

Nothing is written into the venv: the children run with PYTHONDONTWRITEBYTECODE=1.

    .venv/bin/python benchmarks/declared_vs_pip_check.py [--venv DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_VENV = Path(os.environ.get("CUDADEPS_VENV_CACHE", Path.home() / ".cache" / "pytest-cudadeps")) / "torch-2.14.1"
GOAL = 0.5

DECLARED_CHILD = """\
import sys
from pytest_cudadeps.checks.requires import declared_findings
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot
findings = declared_findings(take_snapshot(Settings(paths=(sys.argv[1],)), with_linkage=False))
failed = [f.name for f in findings if f.outcome.value == "fail"]
print(f"{len(findings)} findings, {len(failed)} failed: {failed}")
"""


def site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        sys.exit(f"no site-packages in {venv}: build it first (pytest --integration builds it)")
    return found[0]


def timed_child(command: Sequence[str], cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=cwd)
    return time.perf_counter() - start, done


def in_process(site: Path, rounds: int) -> tuple[float, float, float]:
    """Import time of the engine, its first (cold) run, and the median of warm runs."""
    start = time.perf_counter()
    from pytest_cudadeps.checks.requires import declared_findings
    from pytest_cudadeps.core.settings import Settings
    from pytest_cudadeps.engine.snapshot import take_snapshot
    imported = time.perf_counter() - start

    def once() -> float:
        t0 = time.perf_counter()
        declared_findings(take_snapshot(Settings(paths=(str(site),)), with_linkage=False))
        return time.perf_counter() - t0

    cold = once()
    warm = statistics.median(once() for _ in range(max(rounds, 3)))
    return imported, cold, warm


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"the torch venv (default {DEFAULT_VENV})")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    args = parser.parse_args(argv)
    venv: Path = args.venv
    site = site_packages(venv)

    runners: dict[str, Callable[[], tuple[float, subprocess.CompletedProcess[str]]]] = {
        "declared": lambda: timed_child([sys.executable, "-c", DECLARED_CHILD, str(site)]),
        "pip check": lambda: timed_child([str(venv / "bin" / "python"), "-m", "pip", "check"]),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}
    for name, runner in runners.items():  # one untimed warm-up of each: file cache
        outputs[name] = runner()[1]
    for round_no in range(args.rounds):
        order = list(runners) if round_no % 2 == 0 else list(reversed(runners))
        for name in order:
            seconds, outputs[name] = runners[name]()
            times[name].append(seconds)

    declared_out, pip_out = outputs["declared"], outputs["pip check"]
    if declared_out.returncode != 0:
        sys.exit(f"the declared check failed:\n{declared_out.stderr}")
    plugin_seconds, plugin_out = timed_child(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--cuda-deps-only", "--cuda-deps-no-probes",
         f"--cuda-deps-path={site}"],
        cwd=venv.parent)
    imported, cold, warm = in_process(site, args.rounds)

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["declared"] / medians["pip check"]
    print(f"venv: {venv}  ({sum(1 for _ in site.glob('*.dist-info'))} distributions)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} interleaved rounds\n")
    print(f"{'whole process':<44}{'median':>11}{'min':>11}{'max':>11}")
    for name, values in times.items():
        label = {"declared": "declared check (scan + roots + findings)", "pip check": "pip check"}[name]
        print(f"{label:<44}{ms(medians[name]):>11}{ms(min(values)):>11}{ms(max(values)):>11}")
    print(f"{'ratio declared / pip check':<44}{ratio:>11.2f}   goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}")
    print(f"\n{'in process (engine only)':<44}{'time':>11}")
    print(f"{'import of the engine modules':<44}{ms(imported):>11}")
    print(f"{'first run (cold)':<44}{ms(cold):>11}")
    print(f"{'later runs (median, warm)':<44}{ms(warm):>11}")
    print("\nfor reference, one whole `pytest --cuda-deps-only --cuda-deps-no-probes` on the venv "
          f"(every static check, no probe): {ms(plugin_seconds)}"
          f" -> {plugin_out.stdout.strip().splitlines()[-1] if plugin_out.stdout.strip() else plugin_out.returncode}")
    print(f"declared check says: {declared_out.stdout.strip()}")
    print(f"pip check says (exit {pip_out.returncode}): {pip_out.stdout.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
