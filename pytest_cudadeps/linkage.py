"""Native linkage: what each binary of a root needs, where ld.so will find it, and who owns it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .environment import Distribution


@dataclass(frozen=True)
class ResolvedLibrary:
    """One needed soname and the file the loader would map for it.

    ``path`` is None when the loader finds nothing; ``via`` says which step of the
    search found it (``DT_RPATH``, ``LD_LIBRARY_PATH``, ``DT_RUNPATH``, ``ld.so.cache``,
    ``default``); ``owner`` is the distribution whose RECORD lists ``path``.
    """

    soname: str
    path: Path | None
    via: str
    needed_by: tuple[Path, ...]
    owner: str | None


@dataclass(frozen=True)
class Linkage:
    """Every library a root's own shared objects need, transitively, as the loader resolves them."""

    root: Distribution
    objects: tuple[Path, ...]  # the root's own shared objects the walk started from
    libraries: tuple[ResolvedLibrary, ...]  # sorted by soname

    def cuda_libraries(self) -> tuple[ResolvedLibrary, ...]:
        return tuple(lib for lib in self.libraries if is_cuda_soname(lib.soname))


CUDA_SONAME_PREFIXES = (
    "libcuda", "libcublas", "libcufft", "libcurand", "libcusolver", "libcusparse", "libcufile",
    "libnvrtc", "libnvJitLink", "libnvToolsExt", "libnvtx", "libcupti", "libcudnn", "libnccl",
    "libnvshmem", "libcusparseLt", "libnvperf", "libnvidia-ml", "libcheckpoint", "libnvblas",
)


def is_cuda_soname(soname: str) -> bool:
    return soname.startswith(CUDA_SONAME_PREFIXES)
