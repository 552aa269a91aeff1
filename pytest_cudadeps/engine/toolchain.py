"""The JIT toolchains frameworks call at run time, found the way they look for them (nothing is run).

- ``torch.utils.cpp_extension._find_cuda_home()`` (torch 2.14.1): ``CUDA_HOME``, else ``CUDA_PATH``, else the
  folder above the folder of the ``nvcc`` on ``PATH``, else ``/usr/local/cuda`` when it exists; it then runs
  ``CUDA_HOME/bin/nvcc``.  The nvidia-cuda-nvcc wheel's nvcc (``nvidia/cu13/bin/nvcc``) is found only when
  ``PATH`` or ``CUDA_HOME`` names it.
- triton 3.8.0's ``knobs.cache_knobs``: ``TRITON_CACHE_DIR``, else ``TRITON_HOME`` (else ``~``) ``/.triton/cache``;
  it writes the compiled kernels there and loads them as shared objects, which a ``noexec`` mount refuses
  (pytorch/pytorch#173679).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CudaHome:
    """What ``torch.utils.cpp_extension`` takes as CUDA_HOME, and from where (``CUDA_HOME``, ``nvcc on PATH``...)."""

    value: str | None
    how: str

    @property
    def nvcc(self) -> Path | None:
        return Path(self.value) / "bin" / "nvcc" if self.value else None


def find_cuda_home(environ: Mapping[str, str], which: Callable[[str], str | None] | None = None,
                   default: Path = Path("/usr/local/cuda")) -> CudaHome:
    """CUDA_HOME as torch 2.14.1's ``_find_cuda_home()`` finds it (see the module docstring)."""
    for name in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(name):
            return CudaHome(environ[name], name)
    nvcc = (which or (lambda n: shutil.which(n, path=environ.get("PATH"))))("nvcc")
    if nvcc is not None:
        return CudaHome(os.path.dirname(os.path.dirname(nvcc)), f"the nvcc on PATH ({nvcc})")
    if default.exists():
        return CudaHome(str(default), f"{default}, which exists")
    return CudaHome(None, f"no CUDA_HOME, CUDA_PATH or nvcc on PATH, and no {default}")


def wheel_nvcc(site_paths: tuple[Path, ...]) -> Path | None:
    """The nvidia-cuda-nvcc wheel's nvcc (CUDA 13 layout, then CUDA 12's), if installed."""
    for site in site_paths:
        for folder in ("nvidia/cu13/bin", "nvidia/cuda_nvcc/bin"):
            if (site / folder / "nvcc").is_file():
                return site / folder / "nvcc"
    return None


def triton_cache_dir(environ: Mapping[str, str]) -> Path:
    """Where triton 3.8.0 caches compiled kernels."""
    if environ.get("TRITON_CACHE_DIR"):
        return Path(environ["TRITON_CACHE_DIR"])
    return Path(environ.get("TRITON_HOME") or os.path.expanduser("~")) / ".triton" / "cache"


def existing_parent(path: Path) -> Path:
    """The folder itself, or the nearest one above it that exists (triton creates the rest)."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path("/")


def is_noexec(path: Path, statvfs: Callable[[Path], os.statvfs_result] = os.statvfs) -> bool:
    """Whether the mount that holds ``path`` refuses to map its files executable (``mount -o noexec``)."""
    return bool(statvfs(path).f_flag & os.ST_NOEXEC)
