"""The runtime probes as items: a static list of names, each probe run lazily, once per process.

The names depend on files only (the roots, their linkage), never on the GPUs, so every
xdist worker collects the same list.  The children run when the first item that needs
them runs; several items share one child run (``driver[...]`` and ``arch[...]`` share
the driver child, all ``load[...]`` of a root share the load children).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Generic, TypeVar

from packaging.utils import canonicalize_name

from .build import cuda_build
from .driver import (
    DriverInfo,
    gpus_or_reason,
    libcuda_finding,
    nvml_finding,
    probe_driver,
    runtime_compat_finding,
)
from .distributions import Distribution, Environment
from .fatbin import FatbinError, arch_finding, read_architectures
from .findings import Check, Finding, failed, skipped
from .installers import reinstall_command
from .linkage import Linkage, ResolvedLibrary
from .load import LoadResult, LoadStep, library_steps, load_finding, probe_loads, torch_steps
from .requirements import Demand, closure
from .providers import provider_for
from .settings import Settings
from .smoke import SmokeRun, all_reduce_finding, matmul_finding, probe_smoke

T = TypeVar("T")


class Once(Generic[T]):
    """A value computed on first use and kept for the rest of the process."""

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._lock = threading.Lock()
        self._value: list[T] = []

    def __call__(self) -> T:
        with self._lock:
            if not self._value:
                self._value.append(self._compute())
            return self._value[0]


def runtime_checks(
    env: Environment, roots: Sequence[Distribution], linkages: Mapping[str, Linkage], settings: Settings
) -> dict[str, Check]:
    """Item name to check for every runtime probe of these roots."""
    if not roots:
        return {}
    paths = list(settings.paths) if settings.paths is not None else None
    torch = next((root for root in roots if root.key == "torch"), None)
    torch_linkage = linkages.get("torch") if torch is not None else None
    cudart = _cudart(torch_linkage or next(iter(linkages.values()), None))
    driver: Once[DriverInfo] = Once(lambda: probe_driver(
        timeout=settings.timeout, cudart=cudart, paths=paths, inhibit_ld_cache=settings.no_ld_cache))
    need_gpu = settings.require_gpu
    build_cuda, build_source = cuda_build(env, torch)

    checks: dict[str, Check] = {
        "driver[libcuda]": lambda: libcuda_finding(driver(), require_gpu=need_gpu),
        "driver[nvml]": lambda: nvml_finding(driver(), require_gpu=need_gpu),
        "driver[runtime-compat]": lambda: runtime_compat_finding(driver(), build_cuda, build_source,
                                                                  require_gpu=need_gpu),
    }

    seen: set[str] = set()
    for root in roots:
        linkage = linkages.get(root.key)
        if linkage is None:
            continue
        steps: list[LoadStep] = []
        if root.key == "torch" and build_cuda:
            package = env.package_dir(root, "torch")
            if package is not None and (package / "lib" / "libtorch_cuda.so").exists():
                steps += torch_steps(package)
        libraries = [lib for lib in linkage.cuda_libraries() if lib.soname not in seen]
        seen.update(lib.soname for lib in libraries)
        demands = closure(env, root).by_key()
        steps += library_steps([(lib.soname, lib.path) for lib in libraries],
                               {lib.soname: wheel for lib in libraries if (wheel := _wheel_of(lib, build_cuda, demands))},
                               installer=root.installer)
        loads: Once[dict[str, LoadResult]] = Once(_loader(steps, settings, paths))
        for step in steps:
            checks[f"load[{step.name}]"] = _load_check(step, loads, need_gpu)
        checks[f"arch[{root.key}]"] = _arch_check(root, linkage.objects, driver, need_gpu,
                                                  cpu_build=root.key == "torch" and not build_cuda)

    if torch is not None:
        matmul: Once[SmokeRun] = Once(lambda: probe_smoke("matmul", timeout=settings.timeout, paths=paths,
                                                            inhibit_ld_cache=settings.no_ld_cache))
        reduce: Once[SmokeRun] = Once(lambda: probe_smoke("all-reduce", timeout=settings.timeout, paths=paths,
                                                            inhibit_ld_cache=settings.no_ld_cache))
        cpu_reason = f"{torch} is a CPU-only build ({build_source}: cuda = None)" if not build_cuda else None
        checks["smoke[matmul]"] = _unless(cpu_reason, "smoke", "matmul",
                                          lambda: matmul_finding(matmul(), require_gpu=need_gpu))
        checks["smoke[all-reduce]"] = _unless(cpu_reason, "smoke", "all-reduce",
                                              lambda: all_reduce_finding(reduce(), require_gpu=need_gpu))
    return checks


def _wheel_of(lib: ResolvedLibrary, cuda: str | None, demands: Mapping[str, list[Demand]]) -> str | None:
    """What to reinstall for a library: its owner or the wheel that provides it for this CUDA,
    pinned as the root declares it (``nvidia-cuda-runtime==13.0.96.*``) when it does."""
    provider = provider_for(lib.soname, int(cuda.split(".")[0]) if cuda else None)
    name = lib.owner or (provider.distribution if provider else None)
    if name is None:
        return None
    declared = demands.get(canonicalize_name(name))
    return declared[0].wanted() if declared else name


def _cudart(linkage: Linkage | None) -> Path | None:
    if linkage is None:
        return None
    return next((lib.path for lib in linkage.libraries if lib.soname.startswith("libcudart.so") and lib.path), None)


def _loader(steps: list[LoadStep], settings: Settings, paths: list[str] | None) -> Callable[[], dict[str, LoadResult]]:
    return lambda: probe_loads(steps, timeout=settings.timeout, paths=paths, inhibit_ld_cache=settings.no_ld_cache)


def _load_check(step: LoadStep, loads: Once[dict[str, LoadResult]], require_gpu: bool) -> Check:
    return lambda: load_finding(step, loads()[step.name], require_gpu=require_gpu)


def _unless(reason: str | None, check: str, subject: str, run: Check) -> Check:
    return (lambda: skipped(check, subject, reason)) if reason else run


def _arch_check(
    root: Distribution, objects: Sequence[Path], driver: Once[DriverInfo], require_gpu: bool, *, cpu_build: bool
) -> Check:
    def check() -> Finding:
        if cpu_build:
            return skipped("arch", root.key, f"{root} is a CPU-only build: no GPU code to check")
        gpus = gpus_or_reason(driver(), "arch", root.key, require_gpu=require_gpu)
        if isinstance(gpus, Finding):
            return gpus
        try:
            libraries = [read_architectures(path) for path in objects]
        except (OSError, FatbinError) as exc:
            return failed("arch", root.key, f"cannot read the GPU code of {root}: {exc}",
                          fix=f"reinstall it: {reinstall_command(root.installer, f'{root.name}=={root.version}')}")
        if root.key != "torch" and not any(lib.variants for lib in libraries):
            return skipped("arch", root.key, f"{root}'s libraries carry no GPU code (.nv_fatbin)")
        return arch_finding(root.key, libraries, [(f"GPU {g.index} {g.name}", g.capability) for g in gpus],
                            primary="libtorch_cuda.so" if root.key == "torch" else None)

    return check
