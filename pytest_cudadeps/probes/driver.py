"""Child: the NVIDIA driver as libcuda and NVML see it, and the CUDA runtime's own version.

Request: ``{"steps": [...], "cudart": PATH}``.  Steps: ``libcuda`` (``libcuda.so.1`` through
ctypes: ``cuInit(0)``, ``cuDriverGetVersion``), ``nvml`` (nvidia-ml-py: driver version,
supported CUDA version, each GPU's name, memory, compute capability and MIG mode),
``cudart`` (``cudaRuntimeGetVersion`` of the libcudart the linkage check resolved).
"""

from __future__ import annotations

import ctypes
from typing import Any

from . import _protocol
from .load import _libdl, mapped_path


def probe_libcuda() -> dict[str, Any]:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return {"error": str(exc)}
    result: dict[str, Any] = {"path": mapped_path(_libdl(), lib._handle)}
    result["cu_init"] = lib.cuInit(0)
    version = ctypes.c_int(0)
    rc = lib.cuDriverGetVersion(ctypes.byref(version))
    result["cuda_version"] = version.value if rc == 0 else None
    return result


def probe_nvml() -> dict[str, Any]:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"error": str(exc), "code": exc.value}
    try:
        result: dict[str, Any] = {"driver": pynvml.nvmlSystemGetDriverVersion()}
        try:
            result["cuda_version"] = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        except pynvml.NVMLError:
            result["cuda_version"] = pynvml.nvmlSystemGetCudaDriverVersion()
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpu: dict[str, Any] = {"index": index, "name": pynvml.nvmlDeviceGetName(handle)}
            gpu["capability"] = list(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
            try:
                gpu["memory"] = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            except pynvml.NVMLError:
                gpu["memory"] = None
            try:
                gpu["mig"] = "on" if pynvml.nvmlDeviceGetMigMode(handle)[0] else "off"
            except pynvml.NVMLError:
                gpu["mig"] = "n/a"
            gpus.append(gpu)
        result["gpus"] = gpus
        return result
    except pynvml.NVMLError as exc:
        return {"error": str(exc), "code": exc.value}
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def probe_cudart(path: str) -> dict[str, Any]:
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        return {"error": str(exc)}
    version = ctypes.c_int(0)
    rc = lib.cudaRuntimeGetVersion(ctypes.byref(version))
    return {"path": mapped_path(_libdl(), lib._handle), "version": version.value if rc == 0 else None, "rc": rc}


STEPS = {"libcuda": lambda request: probe_libcuda(), "nvml": lambda request: probe_nvml(),
         "cudart": lambda request: probe_cudart(request["cudart"])}


def main() -> None:
    _protocol.open_channel()
    request = _protocol.read_request() or {}
    for step in request.get("steps", ("libcuda", "nvml")):
        _protocol.begin(step)
        _protocol.end(step, **STEPS[step](request))
    _protocol.done()


if __name__ == "__main__":
    main()
