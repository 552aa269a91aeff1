"""Drift: what differs between this environment and a known-good host's report, or across a fleet's reports.

A report (``--cuda-deps-json``) is flattened into keys a host can be compared on, each with one
value that does not depend on where the environment lives: ``dist:nvidia-nccl-cu13`` (its
version), ``lib:libcudart.so.13`` (the file the loader picks, relative to site-packages, and its
owner), ``torch:cuda``, ``python``, ``driver``, ``gpu:0``.  ``--cuda-deps-compare=BASELINE.json``
makes one failing ``drift[KEY]`` item per key that differs (the list comes from files, so every
xdist worker makes the same one; the driver and GPUs are compared in ``drift[driver]`` when it
runs).  ``python -m pytest_cudadeps compare A.json B.json ...`` prints the keys that differ
across hosts and the host that is the odd one out.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from pytest_cudadeps.engine.baseline import ABSENT, ReportError, keys, load

# --- the fleet ----------------------------------------------------------------------------------------


def fleet(paths: Sequence[str]) -> tuple[list[str], int]:
    """The lines ``compare`` prints for N reports, and its exit status (0 same, 1 differ, 2 unreadable)."""
    try:
        reports = [load(p) for p in paths]
    except ReportError as exc:
        return [f"cudadeps compare: {exc}"], 2
    if len(reports) < 2:
        return ["cudadeps compare: give two reports or more"], 2
    hosts = [r["environment"]["host"] for r in reports]
    names = hosts if len(set(hosts)) == len(hosts) else [str(p) for p in paths]
    values = [keys(r["environment"]) for r in reports]
    differing = sorted(k for k in set().union(*values) if len({v.get(k, ABSENT) for v in values}) > 1)
    lines = [f"cudadeps compare: {len(reports)} reports, {len(differing)} key{'s' if len(differing) != 1 else ''} differ"]
    odd: Counter[str] = Counter()
    for key in differing:
        seen = Counter(v.get(key, ABSENT) for v in values)
        majority, count = seen.most_common(1)[0]
        unique_majority = list(seen.values()).count(count) == 1
        lines.append(key)
        for value, _ in seen.most_common():
            who = [name for name, v in zip(names, values) if v.get(key, ABSENT) == value]
            mark = "  <- odd one out" if unique_majority and value != majority else ""
            odd.update(who if mark else [])
            lines.append(f"  {value}: {', '.join(who)}{mark}")
    if odd:
        host, count = odd.most_common(1)[0]
        lines.append(f"odd one out: {host} ({count} of {len(differing)} differences)")
    return lines, 1 if differing else 0


def main(argv: Sequence[str]) -> int:
    lines, status = fleet(argv)
    print("\n".join(lines), file=sys.stdout if status < 2 else sys.stderr)
    return status
