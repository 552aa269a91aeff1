"""A saved report read back: the keys two hosts are compared on (``dist:...``, ``lib:...``, ``driver``, ``gpu:N``),
each with a value that does not depend on where the environment lives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.core.report_format import DriverDoc, EnvironmentDoc, ReportDoc, ReportError, read_report

__all__ = ["ABSENT", "RUNTIME_KEYS", "Difference", "ReportError", "differences", "driver_keys", "keys", "load"]

RUNTIME_KEYS = ("driver", "driver:cuda", "gpu:")  # known only once the driver probe ran


ABSENT = "(absent)"


def load(path: str | Path) -> ReportDoc:
    """A saved report, checked (:func:`pytest_cudadeps.core.report_format.read_report`)."""
    return read_report(path)


def _relative(path: str, paths: Sequence[str]) -> str:
    for location in paths:
        if path.startswith(location.rstrip("/") + "/"):
            return f"site-packages/{path[len(location.rstrip('/')) + 1:]}"
    return path


def keys(environment: EnvironmentDoc) -> dict[str, str]:
    """The comparable keys of a report's ``environment``, each with its value."""
    found = {"python": str(environment["python"]["version"]), "torch:cuda": str(environment["torch_cuda"])}
    for dist in environment["distributions"]:
        found.setdefault(f"dist:{dist['name'].lower()}", str(dist["version"]))
    for lib in environment["libraries"]:
        where = _relative(lib["path"], environment["paths"]) if lib["path"] else "not found"
        found[f"lib:{lib['soname']}"] = f"{where} ({lib['owner'] or 'no owner'})"
    found.update(driver_keys(environment["driver"]))
    return found


def driver_keys(driver: DriverDoc) -> dict[str, str]:
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
