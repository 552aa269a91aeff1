"""The ``driver[...]`` findings: libcuda and ``cuInit``, NVML and its GPUs, and whether the driver runs the CUDA
runtime of the wheels; a failed driver call is worded from :mod:`pytest_cudadeps.tables.cuda_errors`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from pytest_cudadeps.checks.findings import INSTALL_DRIVER, Finding, failed, passed, skipped, unavailable
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.probes.child.protocol import CudartAnswer, LibcudaAnswer, NvmlAnswer
from pytest_cudadeps.probes.driver import DriverInfo, Gpu
from pytest_cudadeps.probes.runner import Blame
from pytest_cudadeps.tables.cuda_errors import DriverError, cu_error, cudart_error, nvml_error
from pytest_cudadeps.tables.drivers import cuda_version_text, cuda_version_tuple, minimum_driver, torch_build_for, version_tuple


def _error_finding(check: str, subject: str, call: str, error: DriverError, path: str | None) -> Finding:
    where = f" in {path}" if path else ""
    return failed(check, subject, f"{call} returned {error.code} ({error.name}){where}: {error.cause}",
                  fix=error.cure, code=str(error.code), error=error.name)


def cu_result_finding(check: str, subject: str, call: str, code: int, path: str | None) -> Finding:
    """A failed driver API call worded from the table: ``cuInit(0) returned 802 (CUDA_ERROR_SYSTEM_NOT_READY) in ...``."""
    return _error_finding(check, subject, call, cu_error(code), path)


def cudart_error_finding(check: str, subject: str, call: str, code: int, path: str | None) -> Finding:
    """A failed CUDA runtime call (``cudaGetDeviceCount``) worded from the runtime's table."""
    return _error_finding(check, subject, call, cudart_error(code), path)


def nvml_error_finding(check: str, subject: str, call: str, code: int, path: str | None) -> Finding:
    """A failed NVML call worded from the table: ``nvmlInit() returned 18 (NVML_ERROR_LIB_RM_VERSION_MISMATCH) ...``."""
    return _error_finding(check, subject, call, nvml_error(code), path)


CHECK = "driver"


NVML_LIBRARY_NOT_FOUND = 12  # NVML_ERROR_LIBRARY_NOT_FOUND: libnvidia-ml.so.1 is missing


def _no_driver(check: str, subject: str, reason: str, require_gpu: bool) -> Finding:
    return unavailable(check, subject, reason, require_gpu=require_gpu, fix=INSTALL_DRIVER)


def _trouble(check: str, subject: str, what: str, blame: Blame) -> Finding:
    return failed(check, subject, f"{what} {blame.trouble}", *blame.stderr,
                  fix="reinstall the NVIDIA driver (its user-space libraries are broken), or raise --cuda-deps-timeout")


def libcuda_finding(info: DriverInfo, *, require_gpu: bool = False) -> Finding:
    """``driver[libcuda]``: libcuda.so.1 loads, cuInit(0) succeeds, and which CUDA it supports."""
    lib = info.libcuda
    if isinstance(lib, Blame):
        return _trouble(CHECK, "libcuda", "loading libcuda.so.1 and calling cuInit(0)", lib)
    if lib.error is not None:
        return _no_driver(CHECK, "libcuda", f"libcuda.so.1 not found ({lib.error})", require_gpu)
    rc = lib.cu_init if lib.cu_init is not None else -1
    if rc == 100:
        return _no_driver(CHECK, "libcuda", f"cuInit(0) returned 100 (CUDA_ERROR_NO_DEVICE) in {lib.path}: "
                          "the driver sees no GPU", require_gpu)
    if rc != 0:
        return cu_result_finding(CHECK, "libcuda", "cuInit(0)", rc, lib.path)
    cuda = info.driver_cuda
    supports = f"supports CUDA {cuda_version_text(cuda)}" if cuda else "CUDA version unknown"
    return passed(CHECK, "libcuda", f"{lib.path}: cuInit ok, {supports}",
                  path=str(lib.path), cuda=cuda_version_text(cuda) if cuda else "")


def nvml_finding(info: DriverInfo, *, require_gpu: bool = False) -> Finding:
    """``driver[nvml]``: the driver version and each GPU, through nvidia-ml-py."""
    nvml = info.nvml
    if isinstance(nvml, Blame):
        return _trouble(CHECK, "nvml", "initialising NVML (libnvidia-ml.so.1)", nvml)
    if nvml.error is not None and nvml.code is None and (nvml.module is None or nvml.error.startswith("AttributeError")):
        return _own_dependency(info, nvml, require_gpu)
    if nvml.error is not None:
        if nvml.code == NVML_LIBRARY_NOT_FOUND:
            return _no_driver(CHECK, "nvml", "NVML library not found: libnvidia-ml.so.1 is missing, "
                              "no NVIDIA driver on this host", require_gpu)
        if nvml.code is not None:
            return nvml_error_finding(CHECK, "nvml", "NVML", nvml.code, None)
        return failed(CHECK, "nvml", f"NVML failed: {nvml.error}",
                      fix="check `nvidia-smi`; reinstall the NVIDIA driver if it fails the same way")
    if not info.gpus:
        return _no_driver(CHECK, "nvml", f"NVIDIA driver {info.driver_version} sees no GPU", require_gpu)
    cuda = nvml.cuda_version
    summary = f"driver {info.driver_version}, CUDA {cuda_version_text(cuda) if cuda else '?'}; " + "; ".join(
        gpu.describe() for gpu in info.gpus)
    return passed(CHECK, "nvml", summary, driver=str(info.driver_version), gpus=str(len(info.gpus)),
                  **{f"gpu{g.index}": f"{g.name}, {g.sm}, MIG {g.mig}" for g in info.gpus}, **_interconnect(info))


def _own_dependency(info: DriverInfo, nvml: NvmlAnswer, require_gpu: bool) -> Finding:
    """nvidia-ml-py, the plugin's own dependency, missing (uninstalled with the nvidia-* wheels) or shadowed by the
    deprecated ``pynvml`` distribution's module of the same name: the plugin's need, not the environment's; on a
    host without a driver nothing needs NVML, so it fails nothing there."""
    if nvml.module is None:
        what = f"nvidia-ml-py, this plugin's own dependency, is not importable ({nvml.error})"
        fix = f"{quote(sys.executable)} -m pip install nvidia-ml-py"  # the plugin's interpreter runs the child
    else:
        what = (f"the pynvml module at {nvml.module} lacks what nvidia-ml-py provides ({nvml.error}): the deprecated "
                f"`pynvml` distribution shadows nvidia-ml-py")
        fix = (f"{quote(sys.executable)} -m pip uninstall -y pynvml && "
               f"{quote(sys.executable)} -m pip install --force-reinstall nvidia-ml-py")
    libcuda = info.libcuda
    if isinstance(libcuda, LibcudaAnswer) and libcuda.error and "cannot open shared object file" in libcuda.error:
        return _no_driver(CHECK, "nvml", f"{what}; no NVIDIA driver on this host either, so nothing needs it",
                          require_gpu)
    return failed(CHECK, "nvml", what, fix=fix)


_P2P_STATUS = {0: "ok", 1: "chipset not supported", 2: "GPU not supported", 3: "IOH topology not supported",
               4: "disabled by regkey", 5: "not supported"}  # nvmlGpuP2PStatus_t


def _interconnect(info: DriverInfo) -> dict[str, str]:
    """NVLink and peer-to-peer as properties (junitxml, the JSON report), where NVML reports them."""
    facts = {f"gpu{g.index}_nvlinks": str(g.nvlinks) for g in info.gpus if g.nvlinks is not None}
    if isinstance(info.nvml, NvmlAnswer) and info.nvml.p2p:
        facts["p2p"] = ", ".join(f"{a}-{b} {_P2P_STATUS.get(status, f'status {status}')}" for a, b, status in info.nvml.p2p)
    return facts


_DRIVER_VERSION = re.compile(r"\d{2,4}(\.\d{1,3}){1,2}")  # 580.65.06, 535.104 (NVIDIA's own spellings)


def runtime_compat_finding(
    info: DriverInfo, build_cuda: str | None, build_source: str, *, require_gpu: bool = False
) -> Finding:
    """``driver[runtime-compat]``: the driver runs the CUDA runtime that the wheels carry.

    The runtime version is libcudart's own (``cudaRuntimeGetVersion`` in the child)
    when the linkage check resolved one, else the root's build (``torch/version.py``).
    The rules in order: the driver's CUDA is as new as the runtime, or of the same major
    with a driver new enough for minor-version compatibility; else the driver is too old.
    """
    subject = "runtime-compat"
    if isinstance(info.cudart, Blame):
        return _trouble(CHECK, subject, "loading libcudart and calling cudaRuntimeGetVersion", info.cudart)
    runtime, source = _runtime_version(info, build_cuda, build_source)
    if runtime is None:
        return skipped(CHECK, subject, f"no CUDA runtime to compare with: {source}")
    driver_cuda = info.driver_cuda
    if driver_cuda is None:
        reason = _error_of(info.libcuda) or _error_of(info.nvml) or "the driver reports no CUDA version"
        return _no_driver(CHECK, subject, f"cannot compare the CUDA {runtime[0]}.{runtime[1]} runtime with "
                          f"the driver: {reason}", require_gpu)
    driver = info.driver_version
    if driver is not None and not _DRIVER_VERSION.fullmatch(driver):
        return failed(CHECK, subject, f"the NVIDIA driver reports version {driver!r}, which is not a driver version "
                      "such as '580.65.06': the CUDA runtime cannot be checked against it",
                      "read from NVML (nvmlSystemGetDriverVersion)",
                      fix="reinstall the NVIDIA driver: a damaged or substituted libnvidia-ml.so.1 answers this")
    pair = _Pair(runtime, source, cuda_version_tuple(driver_cuda), driver, *minimum_driver(runtime))
    for rule in (_runs_directly, _runs_by_minor_compatibility):
        found = rule(pair, subject)
        if found is not None:
            return found
    return _driver_too_old(pair, subject)


@dataclass(frozen=True)
class _Pair:
    """The runtime the wheels carry and the driver that is to run it."""

    runtime: tuple[int, int]
    source: str  # where the runtime's version was read
    supported: tuple[int, int]  # the newest CUDA the driver supports
    driver: str | None  # the driver's version, when NVML gave it
    major_min: str | None  # the oldest driver of the runtime's major (minor-version compatibility)
    ga_min: str | None  # the driver released with the runtime

    @property
    def runtime_text(self) -> str:
        return f"{self.runtime[0]}.{self.runtime[1]}"

    def shown(self) -> str:
        cuda = f"CUDA {self.supported[0]}.{self.supported[1]}"
        return f"NVIDIA driver {self.driver} ({cuda})" if self.driver else f"the NVIDIA driver ({cuda})"

    def facts(self) -> dict[str, str]:
        return {"runtime": self.runtime_text, "driver_cuda": f"{self.supported[0]}.{self.supported[1]}",
                "runtime_from": self.source, **({"driver": self.driver} if self.driver else {})}


def _runs_directly(pair: _Pair, subject: str) -> Finding | None:
    if pair.supported < pair.runtime:
        return None
    return passed(CHECK, subject, f"{pair.shown()} runs the CUDA {pair.runtime_text} runtime from {pair.source}",
                  **pair.facts())


def _runs_by_minor_compatibility(pair: _Pair, subject: str) -> Finding | None:
    """Same major, and a driver at least that major's minimum (or no version to compare)."""
    if pair.supported[0] != pair.runtime[0]:
        return None
    if pair.driver is not None and pair.major_min is not None \
            and version_tuple(pair.driver) < version_tuple(pair.major_min):
        return None
    note = f"; CUDA {pair.runtime_text} GA driver is {pair.ga_min}" if pair.ga_min else ""
    return passed(CHECK, subject, f"{pair.shown()} runs the CUDA {pair.runtime_text} runtime from {pair.source} "
                  f"through minor-version compatibility (newer PTX cannot be JIT-compiled{note})", **pair.facts())


def _driver_too_old(pair: _Pair, subject: str) -> Finding:
    runtime, major_min, ga_min = pair.runtime, pair.major_min, pair.ga_min
    need = f">= {major_min}" if major_min else f"for CUDA {runtime[0]}.x"
    exact = f" (CUDA {pair.runtime_text} GA: {ga_min})" if ga_min else ""
    build = torch_build_for(pair.supported)
    alternative = (f", or install the torch build for CUDA {build[0]}.{build[1]}: pip install torch --index-url "
                   f"https://download.pytorch.org/whl/cu{build[0]}{build[1]}" if build else "")
    return failed(
        CHECK, subject,
        f"{pair.shown()} is too old for the CUDA {pair.runtime_text} runtime in the wheels ({pair.source}): "
        f"CUDA {runtime[0]}.x needs driver {need}{exact}",
        "torch fails with: CUDA driver version is insufficient for CUDA runtime version",
        fix=f"upgrade the NVIDIA driver to {ga_min or major_min or 'a newer release'} or newer{alternative}",
        **pair.facts(),
    )


def _error_of(answer: LibcudaAnswer | NvmlAnswer | Blame) -> str | None:
    return answer.trouble if isinstance(answer, Blame) else answer.error


def _runtime_version(
    info: DriverInfo, build_cuda: str | None, build_source: str
) -> tuple[tuple[int, int] | None, str]:
    cudart = info.cudart
    if isinstance(cudart, CudartAnswer) and cudart.version:
        return cuda_version_tuple(cudart.version), f"{cudart.path} (cudaRuntimeGetVersion {cudart.version})"
    if build_cuda:
        parts = version_tuple(build_cuda)
        if len(parts) >= 2:
            return (parts[0], parts[1]), f"{build_source} (cuda = '{build_cuda}')"
    error = cudart.error if isinstance(cudart, CudartAnswer) else None
    return None, error or f"{build_source} names no CUDA version"


def gpus_or_reason(info: DriverInfo, check: str, subject: str, *, require_gpu: bool) -> tuple[Gpu, ...] | Finding:
    """The GPUs for the checks that need them, or the skip/failure that says why there are none."""
    if info.gpus:
        return info.gpus
    nvml = info.nvml
    if isinstance(nvml, Blame):
        return _trouble(check, subject, "asking NVML for the GPUs", nvml)
    if nvml.code == NVML_LIBRARY_NOT_FOUND:
        reason = "no GPU to check: NVML library not found (libnvidia-ml.so.1), no NVIDIA driver on this host"
    elif nvml.error is not None:
        reason = f"no GPU to check: NVML failed: {nvml.error}"
    else:
        reason = f"no GPU to check: NVIDIA driver {info.driver_version} sees no GPU"
    return _no_driver(check, subject, reason, require_gpu)
