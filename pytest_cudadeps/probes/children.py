"""The probe items: a static list of names per snapshot, each child run lazily, once per run.

:class:`Probes` is one object per run: it starts each child the first time an item needs
its answer and keeps the answer (the driver child for ``driver[...]`` and ``arch[...]``, one
load child run per root for its ``load[...]`` items, one smoke child per mode).  The names
depend on files only (the roots, their linkage), never on the GPUs, so every xdist worker
collects the same list.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Generic, Protocol, TypeVar

from pytest_cudadeps.checks.findings import Finding, Pending, failed, skipped
from pytest_cudadeps.engine.build import Build
from pytest_cudadeps.engine.companions import Companion, import_finding, import_names
from pytest_cudadeps.engine.fatbin import FatbinError, arch_finding, read_architectures
from pytest_cudadeps.engine.host import (
    HostFacts,
    compat_finding,
    cpu_build_finding,
    device_nodes_finding,
    kernel_module_finding,
    mig_blocks_all_reduce,
    mig_finding,
    read_host,
    shm_finding,
    visible_devices_finding,
)
from pytest_cudadeps.engine.installers import reinstall_command
from pytest_cudadeps.engine.lazy import lazy_load_targets
from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.engine.triton import TOOLS, find_triton, ptxas_arch_finding, ptxas_finding
from pytest_cudadeps.probes.child.protocol import LibcudaAnswer
from pytest_cudadeps.probes.driver import (
    DriverInfo,
    Gpu,
    gpus_or_reason,
    libcuda_finding,
    nvml_finding,
    probe_driver,
    runtime_compat_finding,
)
from pytest_cudadeps.probes.load import LoadResult, LoadStep, library_steps, load_finding, probe_loads
from pytest_cudadeps.probes.runner import Blame, ChildGroup, Running
from pytest_cudadeps.probes.torch import (
    SmokeRun,
    TorchRun,
    all_reduce_finding,
    compile_finding,
    matmul_finding,
    probe_torch,
    torch_own_steps,
)
from pytest_cudadeps.tables.drivers import cuda_version_tuple

T = TypeVar("T")


class Once(Generic[T]):
    """A value computed once per run: on first use, or ahead in a background thread after :meth:`start`.

    A child's answer is the value: :meth:`start` lets the children run while the static checks
    do, and an item waits only for the answer it needs.
    """

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._lock = threading.Lock()
        self._value: list[T] = []
        self._error: list[BaseException] = []
        self._starting = threading.Lock()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        with self._lock:
            if self._value or self._error:
                return
            try:
                self._value.append(self._compute())
            except BaseException as exc:  # handed to the item that asks, as if it had computed it
                self._error.append(exc)

    def start(self) -> None:
        """Compute in a background thread (once, however often it is asked)."""
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cudadeps-probe", daemon=True)
                self._thread.start()

    def __call__(self) -> T:
        self._run()  # waits for a started computation: it holds the lock until done
        if self._error:
            raise self._error[0]
        return self._value[0]


class _Startable(Protocol):
    def start(self) -> None: ...


class Probes:
    """The children of one run: each started once, ahead (:meth:`start`) or when an item first needs it.

    torch is imported once, in the torch child: a CUDA torch's libraries are loaded there one by
    one first (the ``load[...]`` answers), then torch is imported for the products and, with 2+
    GPUs, the all-reduce (the ``smoke[...]`` answers).  Other roots get a load child of their own.
    """

    def __init__(self, snapshot: Snapshot, group: ChildGroup | None = None, early: Running | None = None) -> None:
        settings = snapshot.settings
        self.snapshot = snapshot
        self.group = group or ChildGroup()  # the plugin stops it when the session ends
        self.timeout = settings.timeout
        self.paths = list(settings.paths) if settings.paths is not None else None
        self.inhibit_ld_cache = settings.no_ld_cache
        self.cudart = _cudart(snapshot)
        self.driver: Once[DriverInfo] = Once(lambda: probe_driver(
            timeout=self.timeout, cudart=self.cudart, paths=self.paths, inhibit_ld_cache=self.inhibit_ld_cache,
            group=self.group))
        self.host: Once[HostFacts] = Once(lambda: read_host(Path(settings.host_root)))
        self._loads: dict[str, Once[dict[str, LoadResult]]] = {}
        self._torch: Once[TorchRun] | None = None
        self._wanted: list[_Startable] = [self.driver]  # the children start() starts
        self._early = early  # the torch child, started ahead (smoke.start_torch), sent torch's own libraries

    def torch_child(self, steps: Sequence[LoadStep] = ()) -> Once[TorchRun]:
        """The one child that imports torch, loading ``steps`` first and the companions last (made on first ask)."""
        if self._torch is None:
            imports = [name for companion in self.snapshot.companions for name in import_names(companion)]
            compile_, early, self._early = self.snapshot.settings.compile, self._early, None
            self._torch = Once(lambda: probe_torch(steps, imports=imports, compile=compile_, timeout=self.timeout,
                                                   paths=self.paths, inhibit_ld_cache=self.inhibit_ld_cache,
                                                   group=self.group, started=early))
            self._wanted.append(self._torch)
        return self._torch

    def smoke(self) -> SmokeRun:
        return self.torch_child()().smoke

    def loads_for(self, root: Root, steps: Sequence[LoadStep]) -> Callable[[], dict[str, LoadResult]]:
        """The answers to a root's load steps (one child run for all of them)."""
        if root.key == "torch" and (root.cuda or self.snapshot.companions):
            torch = self.torch_child(steps)
            return lambda: torch().loads
        if root.key not in self._loads:
            self._loads[root.key] = Once(lambda: probe_loads(steps, timeout=self.timeout, paths=self.paths,
                                                             inhibit_ld_cache=self.inhibit_ld_cache, group=self.group))
            if steps:
                self._wanted.append(self._loads[root.key])
        return self._loads[root.key]

    def start(self) -> None:
        """Start every child the items will need, each in a thread of its own; items then wait for answers."""
        for once in self._wanted:
            once.start()
        if self._early is not None:  # started ahead for a torch child that no item needs: its request ends here
            threading.Thread(target=self._early.wait, name="cudadeps-unneeded", daemon=True).start()
            self._early = None


def probe_checks(snapshot: Snapshot, probes: Probes) -> dict[str, Pending]:
    """Item name to pending finding for every runtime probe of the snapshot's roots."""
    if not snapshot.roots:
        return {}
    require_gpu = snapshot.settings.require_gpu
    torch = snapshot.torch
    build_cuda = torch.cuda if torch is not None else None
    build_source = torch.build_source if torch is not None else "no torch among the roots"
    items: dict[str, Pending] = {
        "driver[libcuda]": lambda: libcuda_finding(probes.driver(), require_gpu=require_gpu),
        "driver[nvml]": lambda: nvml_finding(probes.driver(), require_gpu=require_gpu),
        "driver[runtime-compat]": lambda: runtime_compat_finding(probes.driver(), build_cuda, build_source,
                                                                 require_gpu=require_gpu),
    }
    seen: set[str] = set()
    for root in snapshot.roots:
        if root.linkage is None:
            continue
        steps = load_steps(snapshot, root, seen)
        loads = probes.loads_for(root, steps)
        for step in steps:
            items[f"load[{step.name}]"] = _load_item(loads, step, require_gpu)
        items[f"arch[{root.key}]"] = _arch_item(root, probes, require_gpu)
    if torch is not None:
        cpu_reason = f"{torch.dist} is a CPU-only build ({build_source}: cuda = None)" if not build_cuda else None
        if cpu_reason is None or snapshot.companions:
            probes.torch_child()  # made with the torch root's load steps above, or now without any
        for companion in snapshot.companions:
            items[f"companion[{companion.dist.key}>import]"] = _import_item(snapshot, probes, companion)
        items["smoke[matmul]"] = _unless(cpu_reason, "smoke", "matmul",
                                         lambda: matmul_finding(probes.smoke(), require_gpu=require_gpu))
        items["smoke[all-reduce]"] = _unless(cpu_reason, "smoke", "all-reduce", lambda: _all_reduce(probes, require_gpu))
        if snapshot.settings.compile:  # an item of the option's, the same on every worker
            items["smoke[compile]"] = _unless(cpu_reason, "smoke", "compile",
                                              lambda: compile_finding(probes.smoke(), require_gpu=require_gpu))
    items.update(host_items(snapshot, probes))
    items.update(triton_items(snapshot, probes))
    return items


def triton_items(snapshot: Snapshot, probes: Probes) -> dict[str, Pending]:
    """``triton[ptxas]``, ``triton[ptxas-blackwell]``: the bundled tools run (foreign code: a child each);
    ``triton[ptxas-arch]``: the ptxas triton picks for each GPU the driver reports knows its architecture."""
    triton = find_triton(snapshot.env)
    if triton is None:
        return {}
    timeout, need = snapshot.settings.timeout, snapshot.settings.require_gpu

    def tool(name: str) -> Pending:
        return lambda: ptxas_finding(triton, name, os.environ, timeout)

    items = {f"triton[{name}]": tool(name) for name in TOOLS}
    items["triton[ptxas-arch]"] = lambda: ptxas_arch_finding(
        triton, [gpu.capability for gpu in probes.driver().gpus], os.environ, timeout, require_gpu=need)
    return items


def host_items(snapshot: Snapshot, probes: Probes) -> dict[str, Pending]:
    """``host[...]``: the host's files (kernel module, device nodes, visibility, /dev/shm, compat, MIG)
    against what the driver child reports, and a CPU-only torch on a host with GPUs."""
    need = snapshot.settings.require_gpu

    def libcuda() -> LibcudaAnswer | None:
        answer = probes.driver().libcuda
        return answer if isinstance(answer, LibcudaAnswer) else None

    def libcuda_path() -> str | None:
        answer = libcuda()
        return answer.path if answer is not None else None

    def cu_init() -> int | None:
        answer = libcuda()
        return answer.cu_init if answer is not None else None

    items: dict[str, Pending] = {
        "host[kernel-module]": lambda: kernel_module_finding(probes.host(), probes.driver().driver_version,
                                                             libcuda_path(), require_gpu=need),
        "host[device-nodes]": lambda: device_nodes_finding(probes.host(), len(probes.driver().gpus), require_gpu=need),
        "host[visible-devices]": lambda: visible_devices_finding(
            probes.host(), probes.driver().gpus, require_gpu=need, uuids=_uuids(probes.driver().gpus)),
        "host[shm]": lambda: shm_finding(probes.host(), len(probes.driver().gpus), require_gpu=need),
        "host[compat]": lambda: compat_finding(probes.host(), libcuda_path(), probes.driver().gpus,
                                               cu_init=cu_init(), require_gpu=need),
        "host[mig]": lambda: mig_finding(probes.host(), probes.driver().gpus, require_gpu=need),
    }
    torch = snapshot.torch
    if torch is not None:
        def torch_build() -> Finding:
            driver = probes.driver()
            cuda = cuda_version_tuple(driver.driver_cuda) if driver.driver_cuda else None
            return cpu_build_finding(torch.dist.version, torch.dist.installer, driver.gpus, cuda, require_gpu=need,
                                     cpu_only=not torch.cuda if isinstance(torch.build, Build) else None)

        items["host[torch-build]"] = torch_build
    return items


def _uuids(gpus: Sequence[Gpu]) -> tuple[str, ...]:
    """The GPUs' UUIDs in NVML order, or none when NVML did not give every one (then they are not checked)."""
    found = tuple(gpu.uuid for gpu in gpus if gpu.uuid)
    return found if len(found) == len(gpus) else ()


def _all_reduce(probes: Probes, require_gpu: bool) -> Finding:
    """The all-reduce child runs only where it can: MIG instances cannot talk to each other through NCCL."""
    blocked = mig_blocks_all_reduce(probes.driver().gpus)
    if blocked is not None:
        return skipped("smoke", "all-reduce", blocked)
    return all_reduce_finding(probes.smoke(), require_gpu=require_gpu)


def load_steps(snapshot: Snapshot, root: Root, seen: set[str]) -> list[LoadStep]:
    """What the load child opens for a root: torch's own libraries as its import does, then each CUDA
    library the linkage resolved that no earlier root loads already, each with the resolver's fix."""
    assert root.linkage is not None
    steps = torch_own_steps(snapshot.env, root.dist, root.cuda)
    libraries = [lib for lib in root.linkage.cuda_libraries() if lib.soname not in seen]
    seen.update(lib.soname for lib in libraries)
    resolver = snapshot.resolver(root)
    steps += library_steps([(lib.soname, lib.path) for lib in libraries],
                           {lib.soname: resolver.fix(lib.soname, lib.path) for lib in libraries})
    # then what the libraries open by name at run time (cuDNN's sub-libraries...), each by the path their
    # opener's search predicts; one predicted nowhere is the static lazy[...] item's to explain
    lazy = {soname: (path, fix) for soname, path, fix in lazy_load_targets(snapshot, root)
            if path is not None and soname not in seen}
    seen.update(lazy)
    steps += library_steps([(soname, path) for soname, (path, _) in lazy.items()], {s: f for s, (_, f) in lazy.items()})
    return steps


def _cudart(snapshot: Snapshot) -> Path | None:
    """The libcudart the linkage resolved, torch's first: the driver child asks it for its version."""
    roots = sorted(snapshot.roots, key=lambda root: root.key != "torch")
    for root in roots:
        if root.linkage is not None:
            return next((lib.path for lib in root.linkage.libraries
                         if lib.soname.startswith("libcudart.so") and lib.path), None)
    return None


def _load_item(loads: Callable[[], dict[str, LoadResult]], step: LoadStep, require_gpu: bool) -> Pending:
    return lambda: load_finding(step, loads()[step.name], require_gpu=require_gpu)


def _import_item(snapshot: Snapshot, probes: Probes, companion: Companion) -> Pending:
    def check() -> Finding:
        answers = probes.torch_child()().imports
        errors = {name: answer.trouble if isinstance(answer, Blame) else answer.error for name, answer in answers.items()}
        return import_finding(snapshot.env, companion, errors)

    return check


def _unless(reason: str | None, check: str, subject: str, run: Pending) -> Pending:
    return (lambda: skipped(check, subject, reason)) if reason else run


def _arch_item(root: Root, probes: Probes, require_gpu: bool) -> Pending:
    dist, objects = root.dist, root.linkage.objects if root.linkage is not None else ()
    cpu_build = root.key == "torch" and not root.cuda

    def check() -> Finding:
        if cpu_build:
            return skipped("arch", root.key, f"{dist} is a CPU-only build: no GPU code to check")
        gpus = gpus_or_reason(probes.driver(), "arch", root.key, require_gpu=require_gpu)
        if isinstance(gpus, Finding):
            return gpus
        try:
            libraries = [read_architectures(path) for path in objects]
        except (OSError, FatbinError) as exc:
            return failed("arch", root.key, f"cannot read the GPU code of {dist}: {exc}",
                          fix=f"reinstall it: {reinstall_command(dist.installer, f'{dist.name}=={dist.version}')}")
        if root.key != "torch" and not any(lib.variants for lib in libraries):
            return skipped("arch", root.key, f"{dist}'s libraries carry no GPU code (.nv_fatbin)")
        return arch_finding(root.key, libraries, [(f"GPU {g.index} {g.name}", g.capability) for g in gpus],
                            primary="libtorch_cuda.so" if root.key == "torch" else None)

    return check
