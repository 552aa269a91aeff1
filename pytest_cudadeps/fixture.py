"""The user's own GPU tests: the ``cuda_env`` fixture's object and the cause that blocks a ``cuda`` test.

Both read the plan of the process the test runs in (every xdist worker has its own, from the
same files): the static findings at once, the driver and the smoke probe when first asked
(each child once per process, shared with the ``cudadeps`` items that ran there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.core.report_format import GpuDoc
from pytest_cudadeps.plan import Plan
from pytest_cudadeps.report.causes import Cause, Causes
from pytest_cudadeps.report.document import driver


@dataclass(frozen=True)
class CudaEnv:
    """What the checks found, for a test: ``findings`` (each with its ``cause``), ``causes`` by id, torch's
    CUDA build, the driver and GPUs as the driver probe saw them, and ``libraries``: for each CUDA library
    a root needs, the file the loader picks (None when it finds none)."""

    findings: tuple[Finding, ...]
    causes: Mapping[str, Cause]
    torch_cuda: str | None
    driver_version: str | None
    gpus: tuple[GpuDoc, ...]
    libraries: Mapping[str, str | None]

    @property
    def healthy(self) -> bool:
        return not any(f.outcome is Outcome.FAIL for f in self.findings)

    def finding(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)


def _run(plan: Plan, causes: Causes, name: str) -> Finding | None:
    pending = plan.items.get(name)
    return causes.attach(pending()) if pending is not None else None


def cuda_env(plan: Plan, causes: Causes) -> CudaEnv:
    findings = [causes.attach(f) for f in plan.static]
    findings += [f for f in (_run(plan, causes, name) for name in ("driver[libcuda]", "driver[nvml]")) if f is not None]
    seen = {c.id: c for c in (causes.cause_of(f) for f in findings) if c is not None}
    info = driver({f.name: f for f in findings})
    libraries = {lib.soname: str(lib.path) if lib.path else None
                 for root in plan.snapshot.roots if root.linkage is not None for lib in root.linkage.cuda_libraries()}
    torch = plan.snapshot.torch
    return CudaEnv(tuple(findings), seen, torch.cuda if torch is not None else None, info["version"],
                   tuple(info["gpus"]), libraries)


def blocking_cause(plan: Plan, causes: Causes) -> Cause | None:
    """Why a ``cuda`` test cannot run here: the first root cause of the static findings, else what the smoke
    matmul (run once per process) failed or skipped for; None when torch computes on a GPU."""
    for finding in plan.static:
        cause = causes.cause_of(finding)
        if cause is not None:
            return cause
    smoke = _run(plan, causes, "smoke[matmul]")
    if smoke is None or smoke.outcome is Outcome.PASS:
        return None
    if smoke.outcome is Outcome.SKIP:
        return Cause(smoke.name, smoke.message)
    return causes.cause_of(smoke)
