"""The JIT toolchains frameworks call at run time, found the way they look for them (nothing is run).

- ``torch.utils.cpp_extension._find_cuda_home()`` (torch 2.14.1): ``CUDA_HOME``, else ``CUDA_PATH``, else the
  folder above the folder of the ``nvcc`` on ``PATH``, else ``/usr/local/cuda`` when it exists; it then runs
  ``CUDA_HOME/bin/nvcc``.  The nvidia-cuda-nvcc wheel's nvcc (``nvidia/cu13/bin/nvcc``) is found only when
  ``PATH`` or ``CUDA_HOME`` names it.
- triton 3.8.0's ``knobs.cache_knobs``: ``TRITON_CACHE_DIR``, else ``TRITON_HOME`` (else ``~``) ``/.triton/cache``;
  it writes the compiled kernels there and loads them as shared objects, which a ``noexec`` mount refuses
  (pytorch/pytorch#173679).
- nvcc's ``include/crt/host_config.h`` (nvidia-cuda-crt 13.5.37: ``#if __GNUC__ > 16`` then ``#error -- unsupported
  GNU version! gcc versions later than 16 are not supported!``; nvidia-cuda-nvcc-cu12 12.9.86: ``> 14``;
  /usr/local/cuda-13.0: ``> 15``) refuses a newer host compiler.  torch 2.14.1's ``cpp_extension`` passes
  ``-ccbin $CC`` when ``CC`` is set; otherwise nvcc runs the ``gcc`` on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.core.safe_io import read_text


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


HOST_CONFIG_LIMIT = 1 << 20  # host_config.h is 11-12 KB in CUDA 12.9 and 13.x
_GNU_ERROR = "#error -- unsupported GNU version!"
_GNU_BOUND = re.compile(r"#if\s+__GNUC__\s*>\s*(\d+)\s*$", re.MULTILINE)


def host_config(nvcc: Path) -> Path:
    """The ``crt/host_config.h`` an nvcc includes: ``include/crt`` beside its ``bin`` (toolkit and wheels alike)."""
    return nvcc.parent.parent / "include" / "crt" / "host_config.h"


def gnu_bound(header: Path) -> int | None:
    """The newest gcc major ``header`` accepts (16 for ``#if __GNUC__ > 16`` right before the ``unsupported GNU
    version`` error), None when the file cannot be read or states no bound."""
    try:
        text = read_text(header, HOST_CONFIG_LIMIT, "nvcc's host_config.h", errors="replace")
    except OSError:
        return None
    error = text.find(_GNU_ERROR)
    bounds = list(_GNU_BOUND.finditer(text, 0, error)) if error >= 0 else []
    return int(bounds[-1].group(1)) if bounds else None


@dataclass(frozen=True)
class HostCompiler:
    """The host compiler nvcc runs, and its version (``12.2.0``), or why it could not be read."""

    program: str
    how: str
    version: str | None
    problem: str = ""

    @property
    def major(self) -> int | None:
        head = (self.version or "").split(".")[0]
        return int(head) if head.isdigit() else None


def host_compiler(environ: Mapping[str, str], timeout: float = 10.0) -> HostCompiler:
    """``$CC`` (torch passes it as ``-ccbin``), else the ``gcc`` on ``PATH``, with ``-dumpfullversion``'s answer."""
    program, how = (environ["CC"], "CC") if environ.get("CC") else ("gcc", "the gcc on PATH")
    found = shutil.which(program, path=environ.get("PATH"))
    if found is None:
        return HostCompiler(program, how, None, f"{program} is not a program on PATH")
    try:
        done = subprocess.run([found, "-dumpfullversion"], capture_output=True, text=True, timeout=timeout,
                              env={"PATH": environ.get("PATH", ""), "LC_ALL": "C"}, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return HostCompiler(found, how, None, f"`{found} -dumpfullversion` failed: {exc}")
    version = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None
    problem = "" if version else f"`{found} -dumpfullversion` exited with {done.returncode}"
    return HostCompiler(found, how, version, problem)


def older_compilers(bound: int, environ: Mapping[str, str]) -> list[Path]:
    """``gcc-N`` on ``PATH`` with N at most ``bound``, newest first (Debian and Ubuntu install them so)."""
    found: dict[int, Path] = {}
    for folder in environ.get("PATH", "").split(os.pathsep):
        for major in range(bound, 6, -1):
            candidate = Path(folder or ".") / f"gcc-{major}"
            if major not in found and os.access(candidate, os.X_OK) and candidate.is_file():
                found[major] = candidate
    return [found[m] for m in sorted(found, reverse=True)]


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
