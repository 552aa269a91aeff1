"""The host around the driver, read from files only: kernel module, device nodes, visibility, /dev/shm.

Nothing here loads a library or opens a device node: ``/proc/driver/nvidia/version`` is read
as a small regular file (never a FIFO or a device, never more than ``READ_CAP`` bytes, never
blocking), ``/dev`` entries are only ``stat``-ed, ``/dev/shm`` is only ``statvfs``-ed.  The
host's root folder is a parameter so that the tests give a fake ``/proc`` and ``/dev``.

Each ``*_finding`` takes the :class:`HostFacts` plus plain values that the driver probe
already reports (NVML's driver version, libcuda's mapped path, the GPUs) and returns one
``host[...]`` finding.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cudadeps.core.safe_io import UnsafeFile, read_regular

if TYPE_CHECKING:
    pass
READ_CAP = 64 * 1024  # the version file is two short lines: anything bigger is not that file
_NVRM = re.compile(r"^NVRM version:.*?Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)(?:\s|$)", re.MULTILINE)
_GPU_NODE = re.compile(r"^nvidia(\d+)$")


@dataclass(frozen=True)
class DeviceNode:
    """One ``/dev`` entry as ``stat`` (never ``open``) sees it."""

    path: str
    kind: str  # "char", "missing", "no access", "regular file", "directory", "other"

    @property
    def ok(self) -> bool:
        return self.kind == "char"


@dataclass(frozen=True)
class HostFacts:
    """What the host's files say, read without loading anything (see :func:`read_host`)."""

    root: str
    kernel_module: str | None  # "580.65.06" from /proc/driver/nvidia/version
    kernel_module_text: str  # the NVRM line, or why the file could not be read
    nodes: tuple[DeviceNode, ...]  # nvidiactl, nvidia-uvm, nvidia-uvm-tools
    gpu_nodes: tuple[DeviceNode, ...]  # /dev/nvidia[0-9]+ in numeric order
    mig_caps: tuple[str, ...] | None  # the entries of /dev/nvidia-caps; None when it is absent
    cuda_visible_devices: str | None
    nvidia_visible_devices: str | None
    ld_library_path: str | None
    shm_bytes: int | None
    shm_error: str

    def node(self, name: str) -> DeviceNode:
        return next(node for node in self.nodes if node.path.endswith(f"/{name}"))


def read_small_file(path: Path, cap: int = READ_CAP) -> tuple[str | None, str]:
    """(text, "") or (None, why): the project's one safe reader (a regular file only, at most ``cap`` bytes,
    never blocking on a FIFO), its refusals worded for a host fact."""
    try:
        data = read_regular(path, cap, "this file")
    except UnsafeFile as exc:
        return None, "not a regular file" if exc.reason.startswith("not a regular file") else f"larger than {cap} bytes"
    except FileNotFoundError:
        return None, "not found"
    except PermissionError:
        return None, "permission denied"
    except OSError as exc:
        return None, exc.strerror or str(exc)
    return data.decode("utf-8", "replace"), ""


def parse_kernel_module_version(text: str) -> str | None:
    """The version in ``NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  ...`` (or the open module's)."""
    match = _NVRM.search(text)
    return match.group(1) if match else None


def _stat_node(path: Path) -> DeviceNode:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return DeviceNode(str(path), "missing")
    except OSError:
        return DeviceNode(str(path), "no access")
    if stat.S_ISCHR(mode):
        kind = "char"
    elif stat.S_ISREG(mode):
        kind = "regular file"
    elif stat.S_ISDIR(mode):
        kind = "directory"
    else:
        kind = "other"
    return DeviceNode(str(path), kind)


def _list_dir(path: Path) -> list[str] | None:
    try:
        return sorted(entry.name for entry in os.scandir(path))
    except OSError:
        return None


def _shm_size(path: Path, statvfs: Callable[[Path], os.statvfs_result]) -> tuple[int | None, str]:
    try:
        result = statvfs(path)
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    return result.f_frsize * result.f_blocks, ""


def read_host(
    root: Path = Path("/"),
    environ: Mapping[str, str] | None = None,
    *,
    statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
) -> HostFacts:
    """Read the host's NVIDIA facts under ``root``; ``environ`` defaults to this process's environment."""
    env = os.environ if environ is None else environ
    dev = root / "dev"
    text, why = read_small_file(root / "proc" / "driver" / "nvidia" / "version")
    version = parse_kernel_module_version(text) if text is not None else None
    if text is None:
        shown = f"{root / 'proc/driver/nvidia/version'}: {why}"
    else:
        shown = next((line.strip() for line in text.splitlines() if line.startswith("NVRM")), text.strip()[:200])
    names = _list_dir(dev) or []
    numbered = sorted((int(m.group(1)), name) for name in names if (m := _GPU_NODE.match(name)))
    caps = _list_dir(dev / "nvidia-caps")
    shm_bytes, shm_error = _shm_size(dev / "shm", statvfs)
    return HostFacts(
        root=str(root), kernel_module=version, kernel_module_text=shown,
        nodes=tuple(_stat_node(dev / name) for name in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")),
        gpu_nodes=tuple(_stat_node(dev / name) for _, name in numbered),
        mig_caps=tuple(caps) if caps is not None else None,
        cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"), nvidia_visible_devices=env.get("NVIDIA_VISIBLE_DEVICES"),
        ld_library_path=env.get("LD_LIBRARY_PATH"), shm_bytes=shm_bytes, shm_error=shm_error,
    )
