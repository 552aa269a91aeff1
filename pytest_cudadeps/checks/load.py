"""The ``load[...]`` findings: each library the load child opened, against the file the linkage walk predicted."""

from __future__ import annotations

import os

from pytest_cudadeps.checks.findings import INSTALL_DRIVER, Finding, failed, passed, unavailable
from pytest_cudadeps.probes.load import LoadResult, LoadStep
from pytest_cudadeps.probes.runner import Blame
from pytest_cudadeps.tables.wheels import DRIVER_SONAMES  # missing one means "no driver", not "broken wheel"

CHECK = "load"


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def load_finding(step: LoadStep, result: LoadResult, *, require_gpu: bool = False) -> Finding:
    """The item's finding for one step."""
    what = step.soname or step.target
    reinstall = step.fix or f"reinstall the wheel that provides {what}"
    if isinstance(result, Blame):
        fix = (
            f"raise --cuda-deps-timeout if this host is just slow; otherwise {reinstall}"
            if result.trouble.startswith("hung") else
            f"{reinstall}; check LD_PRELOAD and LD_LIBRARY_PATH for a foreign copy"
        )
        return failed(CHECK, step.name, f"loading {step.target} {result.trouble}", *result.stderr, fix=fix,
                      target=step.target)
    if not result.ok:
        error = result.error or "unknown error"
        if step.soname in DRIVER_SONAMES and "cannot open shared object file" in error:
            return unavailable(CHECK, step.name, f"{step.soname} not found: no NVIDIA driver on this host ({error})",
                               require_gpu=require_gpu, fix=INSTALL_DRIVER)
        return failed(CHECK, step.name, f"dlopen({step.target}) failed: {error}", fix=reinstall, target=step.target)
    mapped = os.path.normpath(result.mapped) if result.mapped else None
    if step.predicted is not None and mapped and not _same_file(mapped, step.predicted):
        return failed(
            CHECK, step.name,
            f"{what} was mapped from {mapped}, not from {step.predicted} as the linkage check predicted",
            f"{result.how}: {os.path.realpath(mapped)} is a different file",
            fix=(f"remove {os.path.dirname(mapped)} from LD_LIBRARY_PATH/LD_PRELOAD, or uninstall the "
                 f"copy there, so that {step.predicted} is used"),
            mapped=mapped, predicted=str(step.predicted),
        )
    return passed(CHECK, step.name, f"{mapped or '?'} ({result.how})", mapped=mapped or "?", how=result.how)
