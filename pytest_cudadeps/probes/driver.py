"""The driver probe: is there an NVIDIA driver, which GPUs, and is it new enough for the wheels' runtime?

Everything is asked in a child (:mod:`pytest_cudadeps.probes.child.driver`): ``libcuda.so.1``
through ctypes, NVML through nvidia-ml-py, and ``cudaRuntimeGetVersion`` of the
libcudart the linkage check resolved.  Without a driver the items skip with the
reason, or fail when the user asked for a GPU (``--cuda-deps-require-gpu``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.probes.child.protocol import CudartAnswer, DriverRequest, LibcudaAnswer, NvmlAnswer
from pytest_cudadeps.probes.runner import Blame, ChildGroup, run_steps


@dataclass(frozen=True)
class Gpu:
    """One GPU as NVML reports it."""

    index: int
    name: str
    capability: tuple[int, int]
    memory: int | None  # bytes
    mig: str  # "on", "off" or "n/a"
    uuid: str | None = None  # "GPU-5e1a...", from NVML
    nvlinks: int | None = None  # active NVLink links, None without NVLink

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    def describe(self) -> str:
        memory = f", {self.memory / 2**30:.0f} GiB" if self.memory else ""
        return f"GPU {self.index} {self.name} (compute capability {self.capability[0]}.{self.capability[1]}{memory}, MIG {self.mig})"


@dataclass(frozen=True)
class DriverInfo:
    """What the driver child answered for each step, or the :class:`Blame` of a step it crashed or hung in.

    ``cudart`` is None when no libcudart was resolved to ask.
    """

    libcuda: LibcudaAnswer | Blame
    nvml: NvmlAnswer | Blame
    cudart: CudartAnswer | Blame | None = None

    @property
    def gpus(self) -> tuple[Gpu, ...]:
        if not isinstance(self.nvml, NvmlAnswer):
            return ()
        return tuple(Gpu(g.index, g.name, g.capability, g.memory, g.mig, g.uuid, g.nvlinks) for g in self.nvml.gpus)

    @property
    def driver_cuda(self) -> int | None:
        """The CUDA version the driver supports (cuDriverGetVersion, else NVML), encoded 13000."""
        from_libcuda = self.libcuda.cuda_version if isinstance(self.libcuda, LibcudaAnswer) else None
        return from_libcuda or (self.nvml.cuda_version if isinstance(self.nvml, NvmlAnswer) else None) or None

    @property
    def driver_version(self) -> str | None:
        return self.nvml.driver if isinstance(self.nvml, NvmlAnswer) and self.nvml.driver else None


def probe_driver(
    *,
    timeout: float,
    cudart: Path | None = None,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
) -> DriverInfo:
    """Ask libcuda, NVML and libcudart in children; a step that crashes or hangs is blamed."""
    steps = ["libcuda", "nvml", *(["cudart"] if cudart else [])]
    runs = run_steps(
        "pytest_cudadeps.probes.child.driver", steps,
        lambda pending, _done: DriverRequest(tuple(pending), str(cudart) if cudart else None),
        timeout=timeout, paths=paths, env=env, inhibit_ld_cache=inhibit_ld_cache, group=group)
    return DriverInfo(runs.answer(LibcudaAnswer, "libcuda"), runs.answer(NvmlAnswer, "nvml"),
                      runs.answer(CudartAnswer, "cudart") if cudart else None)
