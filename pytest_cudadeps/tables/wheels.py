"""Which wheel provides each CUDA library, per CUDA major, and the names that mark CUDA's libraries and wheels.

Used when the providing wheel is not installed (so its RECORD cannot tell) and to say what a root whose
metadata names no CUDA wheel really needs.  ``extra`` is the ``cuda-toolkit`` extra that installs it
(CUDA 13 and later), which pins the versions that belong to one CUDA release.  Sources: the RECORD files
of the wheels torch 2.14.1 (cu130) and 2.7.1 (cu126) install, and ``readelf -d`` of their libraries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    distribution: str
    extra: str | None = None  # cuda-toolkit[extra]

    def spec(self, cuda: str | None) -> str:
        """The requirement that installs it for the CUDA version torch was built with."""
        if cuda and self.extra:
            return f"cuda-toolkit[{self.extra}]=={cuda}.*"
        if cuda and re.match(r"nvidia-cuda-(runtime|nvrtc|cupti)-cu\d+$", self.distribution):
            return f"{self.distribution}=={cuda}.*"
        return self.distribution


DRIVER_SONAMES = ("libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-ptxjitcompiler.so.1")


_CU13: dict[str, Provider] = {
    "libcudart.so.13": Provider("nvidia-cuda-runtime", "cudart"),
    "libcublas.so.13": Provider("nvidia-cublas", "cublas"),
    "libcublasLt.so.13": Provider("nvidia-cublas", "cublas"),
    "libcufft.so.12": Provider("nvidia-cufft", "cufft"),
    "libcufftw.so.12": Provider("nvidia-cufft", "cufft"),
    "libcurand.so.10": Provider("nvidia-curand", "curand"),
    "libcusolver.so.12": Provider("nvidia-cusolver", "cusolver"),
    "libcusolverMg.so.12": Provider("nvidia-cusolver", "cusolver"),
    "libcusparse.so.12": Provider("nvidia-cusparse", "cusparse"),
    "libnvJitLink.so.13": Provider("nvidia-nvjitlink", "nvjitlink"),
    "libnvrtc.so.13": Provider("nvidia-cuda-nvrtc", "nvrtc"),
    "libcupti.so.13": Provider("nvidia-cuda-cupti", "cupti"),
    "libcufile.so.0": Provider("nvidia-cufile", "cufile"),
    "libcudnn.so.9": Provider("nvidia-cudnn-cu13"),
    "libnccl.so.2": Provider("nvidia-nccl-cu13"),
    "libnvshmem_host.so.3": Provider("nvidia-nvshmem-cu13"),
    "libcusparseLt.so.0": Provider("nvidia-cusparselt-cu13"),
}


_CU12: dict[str, Provider] = {
    "libcudart.so.12": Provider("nvidia-cuda-runtime-cu12"),
    "libcublas.so.12": Provider("nvidia-cublas-cu12"),
    "libcublasLt.so.12": Provider("nvidia-cublas-cu12"),
    "libcufft.so.11": Provider("nvidia-cufft-cu12"),
    "libcurand.so.10": Provider("nvidia-curand-cu12"),
    "libcusolver.so.11": Provider("nvidia-cusolver-cu12"),
    "libcusparse.so.12": Provider("nvidia-cusparse-cu12"),
    "libnvJitLink.so.12": Provider("nvidia-nvjitlink-cu12"),
    "libnvrtc.so.12": Provider("nvidia-cuda-nvrtc-cu12"),
    "libcupti.so.12": Provider("nvidia-cuda-cupti-cu12"),
    "libcufile.so.0": Provider("nvidia-cufile-cu12"),
    "libnvToolsExt.so.1": Provider("nvidia-nvtx-cu12"),
    "libcudnn.so.9": Provider("nvidia-cudnn-cu12"),
    "libnccl.so.2": Provider("nvidia-nccl-cu12"),
    "libnvshmem_host.so.3": Provider("nvidia-nvshmem-cu12"),
    "libcusparseLt.so.0": Provider("nvidia-cusparselt-cu12"),
}


_BY_MAJOR = {12: _CU12, 13: _CU13}


def provider_for(soname: str, cuda_major: int | None) -> Provider | None:
    """The wheel that provides ``soname`` for that CUDA major (cuDNN's sub-libraries included)."""
    table = _BY_MAJOR.get(cuda_major or 0, {})
    if soname in table:
        return table[soname]
    if soname.startswith("libcudnn") and cuda_major in _BY_MAJOR:
        return table.get("libcudnn.so.9")
    return None


CUDA_SONAME_PREFIXES = (
    "libcuda", "libcublas", "libcufft", "libcurand", "libcusolver", "libcusparse", "libcufile",
    "libnvrtc", "libnvJitLink", "libnvToolsExt", "libnvtx", "libcupti", "libcudnn", "libnccl",
    "libnvshmem", "libcusparseLt", "libnvperf", "libnvidia-ml", "libcheckpoint", "libnvblas",
)


CUDA_PREFIXES = ("nvidia-", "cuda-")


# nvidia-* distributions that carry no CUDA library: Python bindings of the driver's NVML.
NOT_CUDA_WHEELS = frozenset({"nvidia-ml-py", "nvidia-ml-py3", "pynvml"})


# The CUDA library that defines a C symbol, by the symbol's prefix (the longer prefix first): the loader's
# `undefined symbol: ncclCommShrink` names NCCL, whose wheel is then the one to look at.  The driver's own
# (`cuInit`, `cuMemAlloc_v2`) are left out: the driver is not a wheel.
SYMBOL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("cublasLt", "libcublasLt"), ("cublas", "libcublas"), ("cudnn", "libcudnn"), ("cufft", "libcufft"),
    ("curand", "libcurand"), ("cusolver", "libcusolver"), ("cusparseLt", "libcusparseLt"),
    ("cusparse", "libcusparse"), ("nccl", "libnccl"), ("nvrtc", "libnvrtc"), ("__nvJitLink", "libnvJitLink"),
    ("nvJitLink", "libnvJitLink"), ("cupti", "libcupti"), ("nvshmem", "libnvshmem_host"), ("cuFile", "libcufile"),
    ("cuda", "libcudart"),
)


def library_of_symbol(symbol: str) -> str | None:
    """The soname's stem (``libnccl``) of the CUDA library that defines ``symbol``, from its prefix."""
    return next((stem for prefix, stem in SYMBOL_PREFIXES if symbol.startswith(prefix)), None)
