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

import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_cudadeps.checks.findings import Finding, Pending, failed, passed

CHECK = "drift"
RUNTIME_KEYS = ("driver", "driver:cuda", "gpu:")  # known only once the driver probe ran
ABSENT = "(absent)"


class ReportError(Exception):
    """A report that cannot be read or is not of version 1."""


def load(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ReportError(f"{path} is not a pytest-cudadeps report of version 1")
    return data


def _relative(path: str, paths: Sequence[str]) -> str:
    for location in paths:
        if path.startswith(location.rstrip("/") + "/"):
            return f"site-packages/{path[len(location.rstrip('/')) + 1:]}"
    return path


def keys(environment: Mapping[str, Any]) -> dict[str, str]:
    """The comparable keys of a report's ``environment``, each with its value."""
    found = {"python": str(environment["python"]["version"]), "torch:cuda": str(environment["torch_cuda"])}
    for dist in environment["distributions"]:
        found.setdefault(f"dist:{dist['name'].lower()}", str(dist["version"]))
    for lib in environment["libraries"]:
        where = _relative(lib["path"], environment["paths"]) if lib["path"] else "not found"
        found[f"lib:{lib['soname']}"] = f"{where} ({lib['owner'] or 'no owner'})"
    found.update(driver_keys(environment["driver"]))
    return found


def driver_keys(driver: Mapping[str, Any]) -> dict[str, str]:
    found = {"driver": str(driver["version"] or "none"), "driver:cuda": str(driver["cuda"] or "none")}
    for gpu in driver["gpus"]:
        found[f"gpu:{gpu['index']}"] = f"{gpu['name']}, {gpu['arch']}, MIG {gpu['mig']}"
    return found


@dataclass(frozen=True)
class Difference:
    key: str
    baseline: str
    here: str

    def text(self) -> str:
        return f"{self.key}: {self.baseline} on the baseline, {self.here} here"


def differences(baseline: Mapping[str, str], here: Mapping[str, str], *, runtime: bool) -> list[Difference]:
    """The keys whose values differ (``runtime``: only the driver's and GPUs' keys; otherwise only the others)."""
    out = []
    for key in sorted(set(baseline) | set(here)):
        if key.startswith(RUNTIME_KEYS) != runtime:
            continue
        before, after = baseline.get(key, ABSENT), here.get(key, ABSENT)
        if before != after:
            out.append(Difference(key, before, after))
    return out


def drift_items(baseline_path: str, here: Mapping[str, Any], driver: Callable[[], Mapping[str, Any]]) -> dict[str, Pending]:
    """``drift[KEY]`` per static difference with the baseline, and ``drift[driver]``; ``here`` is this
    environment as :func:`pytest_cudadeps.report.results.environment` describes it without the probes."""
    try:
        baseline = load(baseline_path)
    except ReportError as exc:
        problem = failed(CHECK, "baseline", str(exc), fix="give --cuda-deps-compare a report written by --cuda-deps-json")
        return {problem.name: lambda: problem}
    before = keys(baseline["environment"])
    origin = f"{baseline['environment']['host']} ({baseline_path})"
    items: dict[str, Pending] = {}
    for diff in differences(before, keys(here), runtime=False):
        finding = failed(CHECK, diff.key, diff.text(), f"baseline: {origin}",
                         fix=_fix(diff), baseline=diff.baseline, here=diff.here)
        items[finding.name] = _constant(finding)
    if not items:
        same = passed(CHECK, "environment", f"the distributions and libraries are those of {origin}")
        items[same.name] = _constant(same)

    def runtime() -> Finding:
        found = differences(before, driver_keys(driver()), runtime=True)
        if not found:
            return passed(CHECK, "driver", f"the driver and GPUs are those of {origin}")
        return failed(CHECK, "driver", found[0].text(), *(d.text() for d in found[1:]), f"baseline: {origin}",
                      fix="install the baseline's driver, or save a new baseline if this change is wanted")

    items[f"{CHECK}[driver]"] = runtime
    return items


def _fix(diff: Difference) -> str:
    if diff.key.startswith("dist:") and diff.baseline != ABSENT:
        return f"pip install '{diff.key[5:]}=={diff.baseline}'"
    if diff.key.startswith("dist:"):
        return f"pip uninstall -y {diff.key[5:]}"
    return "make this environment match the baseline, or save a new baseline if this change is wanted"


def _constant(finding: Finding) -> Pending:
    return lambda: finding


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
