"""The ``drift[...]`` items of ``--cuda-deps-compare``: each key that differs from a known-good host's report
(its keys: :mod:`pytest_cudadeps.engine.baseline`), and the driver and GPUs once the driver child answered."""

from __future__ import annotations

from collections.abc import Callable

from pytest_cudadeps.checks.findings import Finding, Pending, failed, passed
from pytest_cudadeps.core.report_format import DriverDoc, EnvironmentDoc
from pytest_cudadeps.engine.baseline import ABSENT, Difference, ReportError, differences, driver_keys, keys, load
from pytest_cudadeps.engine.installers import install_command, uninstall_command

CHECK = "drift"


def drift_items(baseline_path: str, here: EnvironmentDoc, driver: Callable[[], DriverDoc]) -> dict[str, Pending]:
    """``drift[KEY]`` per static difference with the baseline, and ``drift[driver]``; ``here`` is this
    environment as :func:`pytest_cudadeps.report.document` describes it without the probes."""
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
        return install_command("pip", f"{diff.key[5:]}=={diff.baseline}")
    if diff.key.startswith("dist:"):
        return uninstall_command("pip", diff.key[5:])
    return "make this environment match the baseline, or save a new baseline if this change is wanted"


def _constant(finding: Finding) -> Pending:
    return lambda: finding
