"""``compare`` at fleet size: N reports of a real run (about 87 KB each), one host with another NCCL, in one folder.

    python benchmarks/fleet_compare.py [--reports 10000] [--template REPORT.json]

The template is a report of a real run: by default ``tests/data/report-torch-2.14.1.json`` (``python -m
pytest_cudadeps --cuda-deps-json`` on the real torch 2.14.1 venv, with the probes).  Each copy gets its own host name
(``node00000``...); ``node04242`` (or the middle host) gets NCCL 2.29.3.  ``compare FOLDER`` then runs
as a fresh process; printed: its wall time, its peak memory (``ru_maxrss`` from ``wait4``), its
exit status, its number of lines and its longest line, against the goals of issue 20 (30 s, 300 MB,
40 lines, 400 characters).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TEMPLATE = PROJECT / "tests" / "data" / "report-torch-2.14.1.json"


def write_fleet(text: str, folder: Path, count: int) -> str:
    """``count`` reports in ``folder``; the name of the odd host."""
    document = json.loads(text)
    odd = f"node{min(4242, count // 2):05d}"
    before = json.dumps(document["environment"]["host"])
    head, _, tail = text.partition(f'"host": {before}')
    for index in range(count):
        name = f"node{index:05d}"
        body = f'{head}"host": {json.dumps(name)}{tail}'
        if name == odd:
            body = body.replace('"2.30.7"', '"2.29.3"').replace("nvidia-nccl-cu13 2.30.7", "nvidia-nccl-cu13 2.29.3")
        (folder / f"{name}.json").write_text(body)
    return odd


def measure(folder: Path) -> tuple[float, float, int, int, str]:
    """Wall seconds, CPU seconds, peak KB, exit status and stdout of ``compare FOLDER`` in a fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "pytest_cudadeps", "compare", str(folder)], cwd=PROJECT,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, child.returncode, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cudadeps-fleet-") as work:
        folder = Path(work) / "reports"
        folder.mkdir()
        odd = write_fleet(options.template.read_text(), folder, options.reports)
        size = sum(entry.stat().st_size for entry in os.scandir(folder)) / options.reports / 1000
        wall, cpu, peak_kb, status, out = measure(folder)
    lines = out.splitlines()
    print(out, end="")
    print(f"\n{options.reports} reports of {size:.1f} KB (odd host {odd}): exit {status}, {wall:.1f} s (goal 30; CPU {cpu:.1f} s), "
          f"peak {peak_kb / 1024:.0f} MB (goal 300), {len(lines)} lines (goal 40), "
          f"longest {max(map(len, lines), default=0)} characters (goal 400)")
    return 0 if status == 1 and odd in out else 1


if __name__ == "__main__":
    sys.exit(main())
