"""Child: the NVIDIA driver as libcuda and NVML see it, and the CUDA runtime's own version.

Request: :class:`~.protocol.DriverRequest`; answers: :class:`~.protocol.LibcudaAnswer`,
:class:`~.protocol.NvmlAnswer`, :class:`~.protocol.CudartAnswer`.  Steps: ``libcuda`` (``libcuda.so.1`` through
ctypes: ``cuInit(0)``, ``cuDriverGetVersion``), ``nvml`` (nvidia-ml-py: driver version,
supported CUDA version, each GPU's name, memory, compute capability and MIG mode),
``cudart`` (``cudaRuntimeGetVersion`` of the libcudart the linkage check resolved).
"""

from __future__ import annotations

import contextlib
import ctypes
from types import ModuleType
from typing import Callable

from pytest_cudadeps.probes.child import protocol
from pytest_cudadeps.probes.child.load import libdl, mapped_path
from pytest_cudadeps.probes.child.protocol import CudartAnswer, DriverRequest, GpuAnswer, LibcudaAnswer, NvmlAnswer


def probe_libcuda() -> LibcudaAnswer:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return LibcudaAnswer(error=str(exc))
    path = mapped_path(libdl(), lib._handle)
    cu_init = lib.cuInit(0)
    version = ctypes.c_int(0)
    rc = lib.cuDriverGetVersion(ctypes.byref(version))
    return LibcudaAnswer(path=path, cu_init=cu_init, cuda_version=version.value if rc == 0 else None)


def _gpu(pynvml: ModuleType, index: int) -> GpuAnswer:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    try:
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
    except pynvml.NVMLError:
        memory = None
    try:
        mig = "on" if pynvml.nvmlDeviceGetMigMode(handle)[0] else "off"
    except pynvml.NVMLError:
        mig = "n/a"
    try:
        uuid = pynvml.nvmlDeviceGetUUID(handle)
    except pynvml.NVMLError:
        uuid = None
    return GpuAnswer(index, pynvml.nvmlDeviceGetName(handle), (major, minor), memory, mig, uuid, _nvlinks(pynvml, handle))


def _nvlinks(pynvml: ModuleType, handle: object) -> int | None:
    """How many NVLink links are active; None when the GPU has no NVLink (NVML says not supported)."""
    active = 0
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            active += pynvml.nvmlDeviceGetNvLinkState(handle, link) == 1
        except pynvml.NVMLError:
            if link == 0:
                return None
            break  # fewer links than the most NVML knows
    return active


def _p2p(pynvml: ModuleType, count: int) -> tuple[tuple[int, int, int], ...]:
    """Peer-to-peer read status of every pair of GPUs (what NCCL's direct transport needs)."""
    handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
    pairs = []
    for first in range(count):
        for second in range(first + 1, count):
            try:
                pairs.append((first, second, int(pynvml.nvmlDeviceGetP2PStatus(handles[first], handles[second], 0))))
            except pynvml.NVMLError:
                continue
    return tuple(pairs)


def probe_nvml() -> NvmlAnswer:
    """NVML through the ``pynvml`` module of nvidia-ml-py, the plugin's own dependency: a pip uninstall of every
    nvidia-* distribution removes it, and the deprecated ``pynvml`` distribution ships a module of the same name
    that lacks newer functions.  Either is an answer, never a dead child."""
    try:
        import pynvml
    except ImportError as exc:
        return NvmlAnswer(error=f"{type(exc).__name__}: {exc}")
    module = getattr(pynvml, "__file__", None) or "?"
    try:
        return _nvml(pynvml, module)
    except AttributeError as exc:
        return NvmlAnswer(error=f"AttributeError: {exc}", module=module)


def _nvml(pynvml: ModuleType, module: str) -> NvmlAnswer:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return NvmlAnswer(error=str(exc), code=exc.value, module=module)
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        try:
            cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        except pynvml.NVMLError:
            cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        gpus = tuple(_gpu(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount()))
        return NvmlAnswer(driver=driver, cuda_version=cuda, gpus=gpus, p2p=_p2p(pynvml, len(gpus)), module=module)
    except pynvml.NVMLError as exc:
        return NvmlAnswer(error=str(exc), code=exc.value, module=module)
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def probe_cudart(path: str | None) -> CudartAnswer:
    if path is None:
        return CudartAnswer(error="no libcudart was resolved")
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        return CudartAnswer(error=str(exc))
    version = ctypes.c_int(0)
    rc = lib.cudaRuntimeGetVersion(ctypes.byref(version))
    return CudartAnswer(path=mapped_path(libdl(), lib._handle), version=version.value if rc == 0 else None, rc=rc)


STEPS: dict[str, Callable[[DriverRequest], object]] = {
    "libcuda": lambda request: probe_libcuda(),
    "nvml": lambda request: probe_nvml(),
    "cudart": lambda request: probe_cudart(request.cudart),
}


def main() -> None:
    protocol.open_channel()
    request = protocol.request_as(DriverRequest)
    for step in request.steps:
        protocol.begin(step)
        protocol.end(step, STEPS[step](request))
    protocol.done()


if __name__ == "__main__":
    main()
