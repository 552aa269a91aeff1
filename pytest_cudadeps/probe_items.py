"""The probe items of a run: a static list of names per snapshot (files only, never the GPUs, so that every xdist
worker collects the same list), each item asking its child's answer from :class:`~pytest_cudadeps.probes.children.Probes`
and wording it with :mod:`pytest_cudadeps.checks`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable

from pytest_cudadeps.checks.arch import arch_finding
from pytest_cudadeps.checks.companion import import_finding
from pytest_cudadeps.checks.driver import gpus_or_reason, libcuda_finding, nvml_finding, runtime_compat_finding
from pytest_cudadeps.checks.findings import Finding, Pending, failed, skipped
from pytest_cudadeps.checks.framework_probe import framework_finding
from pytest_cudadeps.checks.host import (
    compat_finding,
    cpu_build_finding,
    device_nodes_finding,
    kernel_module_finding,
    mig_blocks_all_reduce,
    mig_finding,
    shm_finding,
    visible_devices_finding,
)
from pytest_cudadeps.checks.load import held_to, held_to_the_loader, load_finding
from pytest_cudadeps.checks.smoke import all_reduce_finding, compile_finding, matmul_finding
from pytest_cudadeps.checks.triton import ptxas_arch_finding, ptxas_finding
from pytest_cudadeps.engine.build import Build
from pytest_cudadeps.engine.companions import Companion
from pytest_cudadeps.engine.distributions import editable_source
from pytest_cudadeps.engine.fatbin import FatbinError, read_architectures
from pytest_cudadeps.engine.installers import install_command, reinstall_command
from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.engine.triton import TOOLS, find_triton
from pytest_cudadeps.probes.child.protocol import LibcudaAnswer
from pytest_cudadeps.probes.children import Once, Probes, declared_files, lazy_load_targets, load_steps
from pytest_cudadeps.probes.driver import Gpu
from pytest_cudadeps.probes.framework import FrameworkRun
from pytest_cudadeps.probes.load import LoadResult, LoadStep
from pytest_cudadeps.probes.runner import Blame
from pytest_cudadeps.probes.tools import assemble_for, tool_version
from pytest_cudadeps.tables.drivers import cuda_version_tuple
from pytest_cudadeps.tables.frameworks import Framework


def probe_checks(snapshot: Snapshot, probes: Probes, static: Mapping[str, Pending] | None = None) -> dict[str, Pending]:
    """Item name to pending finding for every runtime probe of the snapshot's roots; with ``static`` (the static
    items), also the ``linkage[...]`` items of the torch root, held to where ``import torch`` mapped each library."""
    if not snapshot.roots:
        return {}
    items = driver_items(snapshot, probes)
    items.update(library_items(snapshot, probes, static or {}))
    items.update(torch_items(snapshot, probes))
    items.update(framework_items(snapshot, probes, static or {}))
    items.update(host_items(snapshot, probes))
    items.update(triton_items(snapshot, probes))
    return items


def _build_cuda(snapshot: Snapshot) -> tuple[str | None, str]:
    torch = snapshot.torch
    if torch is None:
        return None, "no torch among the roots"
    return torch.cuda, torch.build_source


def driver_items(snapshot: Snapshot, probes: Probes) -> dict[str, Pending]:
    """``driver[...]``: libcuda, NVML, and the driver against the CUDA runtime torch was built for."""
    require_gpu = snapshot.settings.require_gpu
    build_cuda, build_source = _build_cuda(snapshot)
    return {
        "driver[libcuda]": lambda: libcuda_finding(probes.driver(), require_gpu=require_gpu),
        "driver[nvml]": lambda: nvml_finding(probes.driver(), require_gpu=require_gpu),
        "driver[runtime-compat]": lambda: runtime_compat_finding(probes.driver(), build_cuda, build_source,
                                                                 require_gpu=require_gpu),
    }


def library_items(snapshot: Snapshot, probes: Probes, static: Mapping[str, Pending]) -> dict[str, Pending]:
    """``load[...]`` and ``arch[...]`` per root; the torch root's ``linkage[...]`` items held to the import."""
    require_gpu = snapshot.settings.require_gpu
    items: dict[str, Pending] = {}
    seen: set[str] = set()
    for root in snapshot.roots:
        if root.linkage is None:
            continue
        steps = load_steps(snapshot, root, seen)
        loads = probes.loads_for(root, steps)
        for step in steps:
            items[f"load[{step.name}]"] = _load_item(loads, step, require_gpu)
            linkage = f"linkage[{root.key}>{step.name}]"
            if linkage in static and root.key == "torch" and step.soname:
                items[linkage] = _refereed(static[linkage], probes, step)
        items[f"arch[{root.key}]"] = _arch_item(root, probes, require_gpu)
    return items


def torch_items(snapshot: Snapshot, probes: Probes) -> dict[str, Pending]:
    """The companions' imports and ``smoke[...]``, from the one torch child."""
    torch = snapshot.torch
    if torch is None:
        return {}
    require_gpu = snapshot.settings.require_gpu
    build_cuda, build_source = _build_cuda(snapshot)
    cpu_reason = f"{torch.dist} is a CPU-only build ({build_source}: cuda = None)" if not build_cuda else None
    if cpu_reason is None or snapshot.companions:
        probes.torch_child()  # made with the torch root's load steps above, or now without any
    items: dict[str, Pending] = {}
    for companion in snapshot.companions:
        items[f"companion[{companion.dist.key}>import]"] = _import_item(snapshot, probes, companion)
    items["smoke[matmul]"] = _unless(cpu_reason, "smoke", "matmul",
                                     lambda: matmul_finding(probes.smoke(), require_gpu=require_gpu))
    items["smoke[all-reduce]"] = _unless(cpu_reason, "smoke", "all-reduce", lambda: _all_reduce(probes, require_gpu))
    if snapshot.settings.compile:  # an item of the option's, the same on every worker
        items["smoke[compile]"] = _unless(cpu_reason, "smoke", "compile",
                                          lambda: compile_finding(probes.smoke(), require_gpu=require_gpu))
    return items


def framework_items(snapshot: Snapshot, probes: Probes, static: Mapping[str, Pending]) -> dict[str, Pending]:
    """``framework[KEY]`` for each framework root other than torch, from its own child; the ``lazy[...]`` items of
    the libraries it opens itself, held to where that child mapped them."""
    items: dict[str, Pending] = {}
    for root in snapshot.roots:
        framework = root.framework
        if framework is None:
            continue
        child = probes.framework_child(root)
        targets = lazy_load_targets(snapshot, root)
        fixes = {soname: fix for soname, _, fix in targets}
        dist = root.dist
        reinstall = install_command(dist.installer, f"{dist.name}[{framework.extra}]=={dist.version}")
        items[f"framework[{root.key}]"] = _framework_item(root, framework, probes, child, fixes, reinstall)
        for soname, path, _ in targets:
            name = f"lazy[{root.key}>{framework.label}>{soname}]"
            if name in static:
                items[name] = _held_to_framework(static[name], child, soname,
                                                 declared_files(snapshot, root, soname, path), framework.label)
    return items


def _framework_item(root: Root, framework: Framework, probes: Probes, child: Once[FrameworkRun],
                    fixes: dict[str, str], reinstall: str) -> Pending:
    require_gpu = probes.snapshot.settings.require_gpu

    def check() -> Finding:
        gpus = gpus_or_reason(probes.driver(), "framework", framework.key, require_gpu=require_gpu)
        return framework_finding(framework, child(), gpus, fixes=fixes, reinstall=reinstall, dist=root.dist)

    return check


def _held_to_framework(static: Pending, child: Once[FrameworkRun], soname: str, accepted: Sequence[Path],
                       label: str) -> Pending:
    def check() -> Finding:
        mapped = child().mapped(soname)
        return held_to(static(), soname, mapped, accepted, by=f"{label}'s own loading") if mapped else static()

    return check


def triton_items(snapshot: Snapshot, probes: Probes) -> dict[str, Pending]:
    """``triton[ptxas]``, ``triton[ptxas-blackwell]``: the bundled tools run (foreign code: a child each);
    ``triton[ptxas-arch]``: the ptxas triton picks for each GPU the driver reports knows its architecture."""
    triton = find_triton(snapshot.env)
    if triton is None:
        return {}
    timeout, need = snapshot.settings.timeout, snapshot.settings.require_gpu

    def tool(name: str) -> Pending:
        return lambda: ptxas_finding(triton, name, tool_version(triton, name, os.environ, timeout))

    items = {f"triton[{name}]": tool(name) for name in TOOLS}
    items["triton[ptxas-arch]"] = lambda: ptxas_arch_finding(
        triton, assemble_for(triton, [gpu.capability for gpu in probes.driver().gpus], os.environ, timeout),
        require_gpu=need)
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
                                     cpu_only=not torch.cuda if isinstance(torch.build, Build) else None,
                                     editable=editable_source(torch.dist))

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


def _load_item(loads: Callable[[], dict[str, LoadResult]], step: LoadStep, require_gpu: bool) -> Pending:
    return lambda: load_finding(step, loads()[step.name], require_gpu=require_gpu)


def _refereed(static: Pending, probes: Probes, step: LoadStep) -> Pending:
    """A linkage item of torch's, held to the torch child's answer for its library (after ``import torch``)."""

    def check() -> Finding:
        run = probes.torch_child()()
        facts = run.smoke.torch
        worked = facts is not None and facts.error is None
        return held_to_the_loader(static(), step, run.loads.get(step.name, Blame("not asked", ())),
                                  import_worked=worked)

    return check


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
