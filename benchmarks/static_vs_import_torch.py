"""Static diagnosis (declared dependencies + linkage) against ``python -c "import torch"``, side by side.

Both run as fresh processes on the same real torch venv, interleaved round by round,
so that disk cache and machine load touch both alike; the medians and their ratio are
printed.  Goal (issue 3): static diagnosis / import torch <= 0.15.

    python benchmarks/static_vs_import_torch.py [--venv ~/.cache/pytest-cudadeps/torch-2.14.1] [--rounds 7]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

STATIC = """
import sys
from pytest_cudadeps.checks import collect_checks
from pytest_cudadeps.settings import Settings
checks = collect_checks(Settings(enabled=True, only=True, paths=(sys.argv[1],), probes=False))
print(len(checks))
"""


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "pytest-cudadeps" / "torch-2.14.1")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    site = sorted((args.venv / "lib").glob("python3*/site-packages"))[0]
    static_cmd = [sys.executable, "-c", STATIC, str(site)]
    import_cmd = [str(args.venv / "bin" / "python"), "-c", "import torch"]
    startup_cmd = [sys.executable, "-c", "import pytest_cudadeps.checks"]
    timed(static_cmd), timed(import_cmd)  # warm the page cache for both
    runs: dict[str, list[tuple[float, float]]] = {"static": [], "import": [], "startup": []}
    for _ in range(args.rounds):
        runs["static"].append(timed(static_cmd))
        runs["import"].append(timed(import_cmd))
        runs["startup"].append(timed(startup_cmd))
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    print(f"venv: {args.venv}  rounds: {args.rounds} (median, interleaved)")
    print(f"{'':32} {'wall':>8}   {'cpu':>8}")
    print(f"{'static diagnosis (process)':32} {wall['static']:8.3f} s {cpu['static']:8.3f} s")
    print(f"{'  of which interpreter+imports':32} {wall['startup']:8.3f} s {cpu['startup']:8.3f} s")
    label = 'python -c "import torch"'
    print(f"{label:32} {wall['import']:8.3f} s {cpu['import']:8.3f} s")
    print(f"{'ratio static / import torch':32} {wall['static'] / wall['import']:8.3f}   "
          f"{cpu['static'] / cpu['import']:8.3f}   (goal <= 0.15)")


if __name__ == "__main__":
    main()
