"""The ``host[...]`` findings: the host's files (:mod:`pytest_cudadeps.engine.host`) against what the driver
child reports: kernel module, device nodes, visible devices, ``/dev/shm``, forward compatibility, MIG, and a
CPU-only torch on a host with GPUs."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pytest_cudadeps.checks.findings import INSTALL_DRIVER, Finding, failed, passed, skipped, unavailable
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.installers import torch_index_install_command
from pytest_cudadeps.tables.drivers import MAJOR_MINIMUM, TORCH_CUDA_BUILDS, torch_build_for

if TYPE_CHECKING:
    from pytest_cudadeps.probes.driver import Gpu
from pytest_cudadeps.engine.host import DeviceNode, HostFacts

CHECK = "host"


# NCCL's shared-memory transport keeps per-peer buffers in /dev/shm; NVIDIA's NGC containers are
# documented with `--shm-size=1g` as the minimum and PyTorch's own CI runs NCCL with 2 GB after
# segfaults in ncclShmOpen at Docker's 64 MiB default (pytorch/tutorials#2475, NVIDIA/nccl#473).
SHM_MINIMUM = 1 << 30


SHM_FIX = ("start the container with `docker run --ipc=host ...` (the host's /dev/shm) or `docker run "
           "--shm-size=16g ...`; on Kubernetes mount an emptyDir with `medium: Memory` at /dev/shm")


UVM_FIX = ("on the host: `sudo nvidia-modprobe -u -c=0` (loads nvidia_uvm and creates /dev/nvidia-uvm); in a "
           "container: start it with `docker run --gpus all` (the NVIDIA container runtime adds the device nodes)")


_LIBCUDA_VERSION = re.compile(r"^libcuda\.so\.(\d+\.\d+(?:\.\d+)?)$")


_COMPAT_DIRS = ("compat", "cuda-compat")


# NVML names of data-center GPUs (Tesla, A100, H100, L40S, T4, GH200, B200, ...): forward compatibility works.
_DATA_CENTER = re.compile(r"\b(?:Tesla|DGX|HGX|[ABHLTVPK]\d{1,3}S?|GH\d{3}|GB\d{3})\b")


_CONSUMER = re.compile(r"\b(?:GeForce|TITAN)\b", re.IGNORECASE)


def _mib(size: int) -> str:
    return f"{size / 2**30:.0f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def _libcuda_file_version(libcuda_path: str | None) -> str | None:
    """The driver version in libcuda's real file name (``libcuda.so.580.65.06``), read through the symlink."""
    if not libcuda_path:
        return None
    match = _LIBCUDA_VERSION.match(os.path.basename(os.path.realpath(libcuda_path)))
    return match.group(1) if match else None


def kernel_module_finding(
    facts: HostFacts, driver_version: str | None, libcuda_path: str | None, *, require_gpu: bool = False
) -> Finding:
    """``host[kernel-module]``: the loaded nvidia kernel module has the version of the user-space driver.

    The user-space side is NVML's driver version, else the version in libcuda's real file name
    (NVML itself refuses to start on a mismatch, with NVML_ERROR_LIB_RM_VERSION_MISMATCH).
    """
    subject = "kernel-module"
    sides = {name: version for name, version in (("NVML", driver_version),
                                                 ("libcuda", _libcuda_file_version(libcuda_path))) if version}
    if facts.kernel_module is None:
        if not sides and libcuda_path is None:
            return unavailable(CHECK, subject, f"no NVIDIA kernel module ({facts.kernel_module_text})",
                               require_gpu=require_gpu, fix=INSTALL_DRIVER)
        return skipped(CHECK, subject, f"cannot read the kernel module's version ({facts.kernel_module_text}); "
                       "WSL has none, elsewhere `sudo modprobe nvidia` loads it")
    if not sides:
        return skipped(CHECK, subject, f"kernel module {facts.kernel_module} is loaded, but neither NVML nor "
                       "libcuda's file name gives the user-space driver's version", kernel_module=facts.kernel_module)
    wrong = {name: version for name, version in sides.items() if version != facts.kernel_module}
    shown = ", ".join(f"{name} {version}" for name, version in sides.items())
    if not wrong:
        return passed(CHECK, subject, f"kernel module {facts.kernel_module} = {shown}",
                      kernel_module=facts.kernel_module)
    return failed(
        CHECK, subject,
        f"Driver/library version mismatch: kernel module {facts.kernel_module}, "
        + ", ".join(f"{name} {version}" for name, version in wrong.items()),
        facts.kernel_module_text,
        "the driver was upgraded without a reboot: CUDA fails with CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803) and "
        "nvidia-smi with 'Failed to initialize NVML: Driver/library version mismatch'",
        fix="reboot; or stop every process on the GPU (`sudo lsof /dev/nvidia*`) and reload the modules: "
        "`sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia && sudo modprobe nvidia_uvm`",
        kernel_module=facts.kernel_module, **{name.lower(): version for name, version in sides.items()},
    )


def _node_problem(node: DeviceNode) -> str:
    return f"{node.path} is missing" if node.kind == "missing" else f"{node.path} is a {node.kind}, not a character device"


def device_nodes_finding(facts: HostFacts, gpu_count: int, *, require_gpu: bool = False) -> Finding:
    """``host[device-nodes]``: /dev/nvidiactl, /dev/nvidia-uvm and one /dev/nvidiaN per GPU are character devices.

    Only the number of /dev/nvidiaN nodes is compared with the GPUs: in a container started with
    ``--gpus device=2`` the one node is /dev/nvidia2 while NVML calls that GPU 0.
    """
    subject = "device-nodes"
    if gpu_count == 0 and facts.kernel_module is None:
        return unavailable(CHECK, subject, "no NVIDIA driver: no kernel module and no GPU to need device nodes",
                           require_gpu=require_gpu, fix=INSTALL_DRIVER)
    ctl, uvm, tools = facts.node("nvidiactl"), facts.node("nvidia-uvm"), facts.node("nvidia-uvm-tools")
    gpu_ok = [node for node in facts.gpu_nodes if node.ok]
    problems = _node_problems(facts, ctl, uvm, gpu_count)
    facts_out = {"nodes": ", ".join(node.path for node in (ctl, uvm, tools, *facts.gpu_nodes) if node.ok)}
    if not problems:
        return passed(CHECK, subject, f"{ctl.path}, {uvm.path} and {len(gpu_ok)} GPU node(s) "
                      f"({', '.join(node.path for node in gpu_ok)}) are character devices", **facts_out)
    fix = UVM_FIX if not uvm.ok else (
        "on the host: `sudo nvidia-modprobe -c=0` for each GPU index (creates /dev/nvidiactl and /dev/nvidiaN); "
        "in a container: start it with `docker run --gpus all`")
    return failed(CHECK, subject, "; ".join(problems), *_node_details(ctl, uvm), fix=fix, **facts_out)


def _node_problems(facts: HostFacts, ctl: DeviceNode, uvm: DeviceNode, gpu_count: int) -> list[str]:
    """Each node that is not a character device, then too few GPU nodes for the GPUs."""
    problems = [_node_problem(node) for node in (ctl, uvm, *facts.gpu_nodes) if not node.ok]
    gpu_ok = sum(1 for node in facts.gpu_nodes if node.ok)
    if gpu_ok < gpu_count:
        problems.append(f"{gpu_ok} /dev/nvidiaN character devices for the {gpu_count} GPUs NVML reports")
    return problems


def _node_details(ctl: DeviceNode, uvm: DeviceNode) -> list[str]:
    """What a missing uvm node breaks, and that a non-device file must go before the node can be made."""
    details = []
    if not uvm.ok:
        details.append("without /dev/nvidia-uvm nvidia-smi works but CUDA does not: cudaGetDeviceCount fails "
                       "(cuInit: CUDA_ERROR_OPERATING_SYSTEM or CUDA_ERROR_NO_DEVICE)")
    if uvm.kind not in ("char", "missing") or ctl.kind not in ("char", "missing"):
        details.append("a non-device file in place of a node hides the real one: remove it "
                       f"(`sudo rm {shlex.quote(uvm.path if not uvm.ok else ctl.path)}`) before recreating it")
    return details


def _strtoul(entry: str) -> int:
    """CUDA reads an index like strtoul: leading digits count (``1gpu`` is 1), anything else is -1."""
    digits = re.match(r"\+?(\d+)", entry)
    return int(digits.group(1)) if digits else -1


def _gpu_label(gpu: Gpu) -> str:
    return f"GPU {gpu.index} {gpu.name}"


def _read_visible(value: str, gpus: Sequence[Gpu], uuids: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(what torch sees, the problems, the entries worth keeping), as CUDA and torch read the list.

    The rules are torch's model of CUDA (``torch.cuda._parse_visible_devices``): a repeated entry
    hides every GPU, an invalid entry (``-1``, ``none``, an index past the count, an unknown UUID)
    ends the list, and a process uses one MIG device only.
    """
    seen: list[str] = []
    problems: list[str] = []
    keep: list[str] = []
    entries = [entry.strip() for entry in value.split(",")]
    for position, entry in enumerate(entries):
        if entry in keep:
            return [], [f"`{entry}` is repeated: a repeated entry hides every GPU"], keep
        rest = entries[position + 1:]
        after = f"; CUDA ignores the entries after it ({','.join(rest)})" if rest else ""
        read = _read_entry(entry, keep, gpus, uuids, after)
        if read.problem is not None:
            problems.append(read.problem)
        if read.ends_list:
            break
        if read.seen is not None:
            keep.append(entry)
            seen.append(read.seen)
    return seen, problems, keep


class _Entry(NamedTuple):
    """One entry of CUDA_VISIBLE_DEVICES as CUDA reads it: the device it shows, or why it shows none."""

    seen: str | None
    problem: str | None = None
    ends_list: bool = False  # an invalid entry: CUDA reads no further


def _read_entry(entry: str, keep: list[str], gpus: Sequence[Gpu], uuids: Sequence[str], after: str) -> _Entry:
    """A MIG UUID, a GPU UUID (or a prefix of one), else an index; ``after`` ends a problem that ends the list."""
    if entry.startswith("MIG-"):
        if any(item.startswith("MIG-") for item in keep):
            return _Entry(None, f"`{entry}`: a process uses one MIG device only (pytorch#130181), the first listed")
        return _Entry(f"MIG device {entry}")
    if entry.startswith("GPU-"):
        return _uuid_entry(entry, gpus, uuids, after)
    return _index_entry(entry, gpus, after)


def _uuid_entry(entry: str, gpus: Sequence[Gpu], uuids: Sequence[str], after: str) -> _Entry:
    matched = [gpu for gpu, uuid in zip(gpus, uuids) if uuid.startswith(entry)]
    if uuids and len(matched) != 1:
        return _Entry(None, f"`{entry}` matches no GPU's UUID{after}", ends_list=True)
    return _Entry(_gpu_label(matched[0]) if matched else f"{entry} (UUID not checked: the probe reports none)")


def _index_entry(entry: str, gpus: Sequence[Gpu], after: str) -> _Entry:
    index = _strtoul(entry)
    if index < 0:
        return _Entry(None, f"`{entry}` is not a GPU index (`-1`, `none` and `void` hide GPUs){after}", ends_list=True)
    if index >= len(gpus):
        return _Entry(None, f"`{entry}` is past the {len(gpus)} GPU(s) of this host (indices 0 to {len(gpus) - 1})"
                            f"{after}", ends_list=True)
    return _Entry(_gpu_label(gpus[index]))


def _container_note(facts: HostFacts) -> str:
    value = facts.nvidia_visible_devices
    if value is None:
        return ""
    if value.strip().lower() in ("", "none", "void"):
        return (f"NVIDIA_VISIBLE_DEVICES={value!r}: the NVIDIA container runtime was told to add no GPU to this "
                "container")
    return f"NVIDIA_VISIBLE_DEVICES={value!r}: the GPUs the NVIDIA container runtime was told to add"


def visible_devices_finding(
    facts: HostFacts, gpus: Sequence[Gpu], *, require_gpu: bool = False, uuids: Sequence[str] = ()
) -> Finding:
    """``host[visible-devices]``: CUDA_VISIBLE_DEVICES leaves torch the GPUs it names, and names only real ones.

    ``uuids`` are the GPUs' UUIDs in NVML order when known (``GPU-...`` entries are checked against them).
    NVML ignores CUDA_VISIBLE_DEVICES, so ``gpus`` are all the GPUs of the host (or container).
    """
    subject = "visible-devices"
    note = _container_note(facts)
    if not gpus:
        hidden = (facts.nvidia_visible_devices or "x").strip().lower() in ("", "none", "void")
        return unavailable(CHECK, subject, "no GPU to make visible" + (f": {note}" if note else ""),
                           require_gpu=require_gpu,
                           fix="start the container with `docker run --gpus all`" if hidden else INSTALL_DRIVER)
    value = facts.cuda_visible_devices
    details = (note,) if note else ()
    if value is None:
        return passed(CHECK, subject, f"CUDA_VISIBLE_DEVICES is not set: torch sees all {len(gpus)} GPU(s)")
    seen, problems, keep = _read_visible(value, gpus, uuids) if value.strip() else ([], ["it is empty"], [])
    sees = f"torch sees {len(seen)} of the {len(gpus)} GPU(s)" + (f": {', '.join(seen)}" if seen else "")
    if not problems:
        return passed(CHECK, subject, f"CUDA_VISIBLE_DEVICES={value!r}: {sees}", visible=str(len(seen)))
    fix = (f"export CUDA_VISIBLE_DEVICES={shlex.quote(','.join(keep))}" if keep else "unset CUDA_VISIBLE_DEVICES")
    return failed(CHECK, subject, f"CUDA_VISIBLE_DEVICES={value!r}: {sees}; " + "; ".join(problems), *details,
                  fix=f"{fix} (or list the GPUs to use: `nvidia-smi -L` shows their indices and UUIDs)",
                  visible=str(len(seen)))


def shm_finding(facts: HostFacts, gpu_count: int, *, require_gpu: bool = False) -> Finding:
    """``host[shm]``: /dev/shm is big enough for NCCL when it will be used (two or more GPUs)."""
    subject = "shm"
    shm = Path(facts.root) / "dev" / "shm"
    size = {"shm": _mib(facts.shm_bytes)} if facts.shm_bytes is not None else {}
    if gpu_count == 0:
        return unavailable(CHECK, subject, "no GPU: NCCL will not run", require_gpu=require_gpu, fix=INSTALL_DRIVER)
    if gpu_count < 2:
        return skipped(CHECK, subject, f"one GPU: NCCL needs no shared memory between GPUs ({shm}"
                       f"{': ' + size['shm'] if size else ''})", **size)
    if facts.shm_bytes is None:
        return failed(CHECK, subject, f"cannot read the size of {shm} ({facts.shm_error}): NCCL keeps its buffers "
                      f"between the {gpu_count} GPUs there", fix=SHM_FIX)
    if facts.shm_bytes < SHM_MINIMUM:
        return failed(CHECK, subject, f"{shm} is {_mib(facts.shm_bytes)}: too small for NCCL between the "
                      f"{gpu_count} GPUs (at least {_mib(SHM_MINIMUM)}; Docker's default is 64 MiB, NVIDIA/nccl#473)",
                      "NCCL then fails with 'unhandled system error' or a bus error in ncclShmOpen",
                      fix=SHM_FIX, **size)
    return passed(CHECK, subject, f"{shm} is {_mib(facts.shm_bytes)}: enough for NCCL between {gpu_count} GPUs",
                  **size)


def _compat_folder(libcuda_path: str) -> str | None:
    """The forward-compatibility folder libcuda came from (``/usr/local/cuda-12.8/compat``), or None."""
    parts = Path(libcuda_path).parts
    for depth in range(len(parts) - 1, 0, -1):
        if parts[depth - 1] in _COMPAT_DIRS or parts[depth - 1].startswith("cuda-compat"):
            return str(Path(*parts[:depth]))
    return None


def forward_compat_support(name: str) -> str:
    """``"yes"`` for data-center GPUs, ``"no"`` for GeForce/TITAN, ``"maybe"`` for workstation RTX/Quadro.

    NVIDIA: forward compatibility is for data-center GPUs, select NGC Server Ready RTX SKUs and Jetson.
    """
    if _CONSUMER.search(name):
        return "no"
    return "yes" if _DATA_CENTER.search(name) else "maybe"


def _without_folder(ld_library_path: str, folder: str) -> str | None:
    """The LD_LIBRARY_PATH value without ``folder`` (and its lib/lib.real children), or None if it is not there."""
    entries = ld_library_path.split(":")
    kept = [entry for entry in entries if not (entry.rstrip("/") == folder or entry.startswith(folder + "/"))]
    return None if kept == entries else ":".join(kept)


def _compat_fix(facts: HostFacts, folder: str) -> str:
    remove = "`sudo apt-get remove 'cuda-compat-*'` (or `conda remove cuda-compat`)"
    new_value = _without_folder(facts.ld_library_path or "", folder)
    if new_value is None:
        return (f"remove {shlex.quote(folder)} from the loader's configuration (`grep -rl {shlex.quote(folder)} "
                f"/etc/ld.so.conf.d`, delete that file, `sudo ldconfig`), or uninstall it: {remove}")
    export = f"export LD_LIBRARY_PATH={shlex.quote(new_value)}" if new_value else "unset LD_LIBRARY_PATH"
    return f"take the compat folder out of LD_LIBRARY_PATH: `{export}`; or uninstall it: {remove}"


def compat_finding(
    facts: HostFacts, libcuda_path: str | None, gpus: Sequence[Gpu], *, cu_init: int | None = None,
    require_gpu: bool = False,
) -> Finding:
    """``host[compat]``: a libcuda from a ``compat/`` folder (cuda-compat) runs only on GPUs that support it.

    ``cu_init`` is cuInit's result when the probe got one: 804 settles it, whatever the names say.
    """
    subject = "compat"
    if not libcuda_path:
        return unavailable(CHECK, subject, "libcuda.so.1 was not loaded: no forward-compatibility library to check",
                           require_gpu=require_gpu, fix=INSTALL_DRIVER)
    folder = _compat_folder(libcuda_path)
    if folder is None:
        return passed(CHECK, subject, f"{libcuda_path} is the driver's own libcuda (not a compat/ folder)")
    support = {gpu.index: forward_compat_support(gpu.name) for gpu in gpus}
    unsupported = [gpu for gpu in gpus if support[gpu.index] == "no"]
    facts_out = {"compat": folder}
    if cu_init == 804 or unsupported:
        which = ", ".join(_gpu_label(gpu) for gpu in unsupported) or "a GPU of this host"
        return failed(CHECK, subject, f"libcuda.so.1 comes from the forward-compatibility folder {folder}, which "
                      f"{which} does not support: cuInit fails with CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE (804)",
                      "forward compatibility works on data-center GPUs, select NGC Server Ready RTX and Jetson only; "
                      "GeForce and TITAN never", fix=_compat_fix(facts, folder), **facts_out)
    if not gpus:
        return unavailable(CHECK, subject, f"libcuda.so.1 comes from the forward-compatibility folder {folder}, "
                           "but no GPU is reported to check it against", require_gpu=require_gpu, fix=INSTALL_DRIVER)
    maybe = [_gpu_label(gpu) for gpu in gpus if support[gpu.index] == "maybe"]
    return passed(CHECK, subject, f"libcuda.so.1 from the forward-compatibility folder {folder} on "
                  f"{'data-center GPUs' if not maybe else 'these GPUs'}{_maybe_note(maybe, cu_init)}", **facts_out)


def _maybe_note(maybe: list[str], cu_init: int | None) -> str:
    """The GPUs whose support depends on the SKU (workstation RTX/Quadro), and whether cuInit settled it."""
    if not maybe:
        return ""
    return (f"; {', '.join(maybe)}: supported only by the NGC Server Ready SKUs"
            f"{', and cuInit succeeded' if cu_init == 0 else ''}")


def mig_blocks_all_reduce(gpus: Sequence[Gpu]) -> str | None:
    """Why the smoke all-reduce cannot run under MIG, or None: a process uses one MIG device only."""
    on = [gpu for gpu in gpus if gpu.mig == "on"]
    if not on:
        return None
    return (f"MIG mode is on ({', '.join(_gpu_label(gpu) for gpu in on)}): a process can use one MIG device "
            "only (pytorch#130181), so an NCCL all-reduce across MIG devices cannot run")


def mig_finding(facts: HostFacts, gpus: Sequence[Gpu], *, require_gpu: bool = False) -> Finding:
    """``host[mig]``: which GPUs have MIG mode on, and what that leaves a process (one MIG device)."""
    subject = "mig"
    if not gpus:
        return unavailable(CHECK, subject, "no GPU to check for MIG", require_gpu=require_gpu, fix=INSTALL_DRIVER)
    reason = mig_blocks_all_reduce(gpus)
    modes = {f"gpu{gpu.index}": gpu.mig for gpu in gpus}
    if reason is None:
        return passed(CHECK, subject, f"MIG mode is off on the {len(gpus)} GPU(s)", **modes)
    caps = ("" if facts.mig_caps else f"; {Path(facts.root) / 'dev' / 'nvidia-caps'} is absent: in a container, "
            "MIG devices come only through the NVIDIA runtime (NVIDIA_VISIBLE_DEVICES=MIG-...)")
    return passed(CHECK, subject, f"{reason}; torch in one process sees 1 MIG device{caps}", **modes)


def _gpus_named(gpus: Sequence[Gpu]) -> str:
    if len(gpus) == 1:
        return f"the {gpus[0].name}"
    names = sorted({gpu.name for gpu in gpus})
    return f"the {len(gpus)} GPUs ({', '.join(names)})"


def cpu_build_finding(
    torch_version: str, installer: str, gpus: Sequence[Gpu], driver_cuda: tuple[int, int] | None, *,
    require_gpu: bool = False, cpu_only: bool | None = None, editable: Path | None = None,
) -> Finding:
    """``host[torch-build]``: torch on a GPU host is a CUDA build.

    ``cpu_only`` is what ``torch/version.py`` says (``cuda = None``) when the caller read it; without
    it the local version label decides (``2.13.0+cpu``).  The fix keeps the torch version and picks
    the newest CUDA build the driver runs (:func:`driver_table.torch_build_for`); for an ``editable``
    install (its source folder) it rebuilds there instead, as PyTorch's own instructions do.
    """
    subject = "torch-build"
    base, _, local = torch_version.partition("+")
    is_cpu = cpu_only if cpu_only is not None else local.startswith("cpu")
    if not gpus:
        return unavailable(CHECK, subject, f"no GPU: torch {torch_version} is not asked to use one",
                           require_gpu=require_gpu, fix=INSTALL_DRIVER)
    if not is_cpu:
        return passed(CHECK, subject, f"torch {torch_version} is a CUDA build", torch=torch_version)
    build = torch_build_for(driver_cuda) if driver_cuda else None
    target = build or TORCH_CUDA_BUILDS[-1]
    command = torch_index_install_command(installer, base, target)
    if editable is not None:  # the developer's own build: rebuild it with CUDA, never replace it from an index
        command = f"cd {quote(str(editable))} && USE_CUDA=1 python -m pip install --no-build-isolation -e ."
    if build is None:
        need = MAJOR_MINIMUM.get(target[0], "a newer release")
        seen = f"supports CUDA {driver_cuda[0]}.{driver_cuda[1]} only" if driver_cuda else "reports no CUDA version"
        command = f"the driver {seen}: upgrade it to >= {need}, then {command}"
    return failed(CHECK, subject, f"torch {torch_version} cannot use {_gpus_named(gpus)} of this host: it is a "
                  "CPU-only build", "torch.cuda.is_available() is False; every tensor stays on the CPU",
                  fix=command, torch=torch_version, cuda_build=f"{target[0]}.{target[1]}")
