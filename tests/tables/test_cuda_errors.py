from __future__ import annotations

import os
import re
from pathlib import Path

import pynvml
import pytest

from pytest_cudadeps.checks.driver import cu_result_finding, cudart_error_finding, libcuda_finding, nvml_error_finding, nvml_finding
from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.probes.child.protocol import LibcudaAnswer, NvmlAnswer
from pytest_cudadeps.probes.driver import probe_driver
from pytest_cudadeps.tables.cuda_errors import CU_RESULTS, CUDART_ERRORS, NVML_ERRORS, DriverError, cu_error, cudart_error, nvml_error
from tests.support.fakes import fake_driver

REQUIRED_CU = (1, 2, 3, 4, 34, 46, 100, 101, 200, 209, 222, 304, 801, 802, 803, 804, 999)
REQUIRED_NVML = (1, 2, 3, 4, 6, 9, 12, 13, 15, 16, 17, 18, 999)


def _toolkit_header(name: str) -> Path:
    """The CUDA toolkit's header on this machine (CUDA_HOME, else /usr/local/cuda); skip where there is none."""
    for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root and (Path(root) / "include" / name).is_file():
            return Path(root) / "include" / name
    pytest.skip(f"no CUDA toolkit {name} on this machine to compare the table with")


def _enum(header: Path, pattern: str) -> dict[int, str]:
    return {int(code): name for name, code in re.findall(pattern, header.read_text(errors="replace"))}


def test_every_required_code_is_in_the_tables_with_a_cause_and_a_cure() -> None:
    assert set(REQUIRED_CU) <= set(CU_RESULTS)
    assert set(REQUIRED_NVML) <= set(NVML_ERRORS)
    for table in (CU_RESULTS, CUDART_ERRORS, NVML_ERRORS):
        for code, entry in table.items():
            assert entry.code == code, entry
            assert entry.cause, entry
            assert entry.cure, entry


def test_cuda_names_are_spelled_as_the_toolkit_headers_spell_them() -> None:
    cuda_h = _enum(_toolkit_header("cuda.h"), r"\b(CUDA_ERROR_[A-Z0-9_]+)\s*=\s*(\d+)")
    assert {code: entry.name for code, entry in CU_RESULTS.items()} == {code: cuda_h[code] for code in CU_RESULTS}
    assert 35 not in cuda_h  # the "insufficient driver" 35 is the runtime's code, not a CUresult
    runtime_h = _enum(_toolkit_header("driver_types.h"), r"\b(cudaError[A-Za-z]+)\s*=\s*(\d+)")
    assert {code: entry.name for code, entry in CUDART_ERRORS.items()} == {code: runtime_h[code] for code in CUDART_ERRORS}
    assert runtime_h[35] == "cudaErrorInsufficientDriver"


def test_nvml_names_are_nvidia_ml_pys_constants_and_none_is_missing() -> None:
    constants = {value: name for name, value in vars(pynvml).items()
                 if name.startswith("NVML_ERROR_") and isinstance(value, int)}
    assert {code: entry.name for code, entry in NVML_ERRORS.items()} == constants


def test_unknown_codes_name_themselves_instead_of_raising() -> None:
    assert cu_error(12345) == DriverError(12345, "unknown CUresult 12345", "a code this table does not know",
                                         cu_error(12345).cure)
    assert nvml_error(77).name == "unknown nvmlReturn_t 77"
    assert cudart_error(5).name == "unknown cudaError 5"
    # 35 as a driver code: cuda.h has none, but what the runtime means by it is worth saying
    assert cu_error(35).name == "unknown CUresult 35"
    assert cu_error(35).cause.startswith("cuda.h has no CUresult 35 (as a CUDA runtime code it is "
                                         "cudaErrorInsufficientDriver: the NVIDIA driver is older")


def test_the_fabric_manager_text() -> None:
    finding = cu_result_finding("driver", "libcuda", "cuInit(0)", 802, "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
    assert finding.outcome is Outcome.FAIL
    assert finding.message == (
        "cuInit(0) returned 802 (CUDA_ERROR_SYSTEM_NOT_READY) in /usr/lib/x86_64-linux-gnu/libcuda.so.1: the system "
        "is not ready for CUDA work: on NVSwitch systems (HGX/DGX) the NVIDIA fabric manager is not running")
    assert finding.fix.startswith("`sudo systemctl enable --now nvidia-fabricmanager` with a nvidia-fabricmanager "
                                  "package of exactly the driver's version")
    assert dict(finding.facts) == {"code": "802", "error": "CUDA_ERROR_SYSTEM_NOT_READY"}
    runtime = cudart_error_finding("driver", "cudart", "cudaGetDeviceCount", 35, None)
    assert runtime.message.startswith("cudaGetDeviceCount returned 35 (cudaErrorInsufficientDriver): the NVIDIA "
                                      "driver is older than the CUDA runtime needs")


@pytest.mark.parametrize(("code", "fix_part"), [
    (34, "remove the `stubs` folder from LD_LIBRARY_PATH"),
    (46, "`sudo nvidia-smi -i 0 -c DEFAULT`"),
    (803, "`sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia && sudo modprobe nvidia_uvm`"),
    (804, "uninstall it: `sudo apt-get remove 'cuda-compat-*'`"),
    (999, "`sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm`"),
])
def test_cuinit_codes_from_the_real_ctypes_probe_reach_the_parent_and_are_named(
    gcc: str, tmp_path: Path, code: int, fix_part: str
) -> None:
    folder = fake_driver(gcc, tmp_path / str(code), cu_init=code)
    info = probe_driver(timeout=30, env={"LD_LIBRARY_PATH": str(folder)})
    assert isinstance(info.libcuda, LibcudaAnswer)
    assert info.libcuda.cu_init == code
    finding = libcuda_finding(info)  # the driver item words it from the table
    assert finding == cu_result_finding("driver", "libcuda", "cuInit(0)", code, info.libcuda.path)
    assert finding.message == (f"cuInit(0) returned {code} ({CU_RESULTS[code].name}) in {folder / 'libcuda.so.1'}: "
                               f"{CU_RESULTS[code].cause}")
    assert fix_part in finding.fix


@pytest.mark.parametrize(("code", "name"), [
    (4, "NVML_ERROR_NO_PERMISSION"), (9, "NVML_ERROR_DRIVER_NOT_LOADED"), (17, "NVML_ERROR_OPERATING_SYSTEM"),
    (18, "NVML_ERROR_LIB_RM_VERSION_MISMATCH"), (999, "NVML_ERROR_UNKNOWN"),
])
def test_nvml_init_codes_from_the_real_nvidia_ml_py_reach_the_parent_and_are_named(
    gcc: str, tmp_path: Path, code: int, name: str
) -> None:
    folder = fake_driver(gcc, tmp_path / str(code), nvml_init=code)
    info = probe_driver(timeout=30, env={"LD_LIBRARY_PATH": str(folder)})
    assert isinstance(info.nvml, NvmlAnswer)
    assert info.nvml.code == code
    assert not info.gpus
    assert nvml_finding(info) == nvml_error_finding("driver", "nvml", "NVML", code, None)  # the driver item
    finding = nvml_error_finding("driver", "nvml", "nvmlInit()", info.nvml.code, None)
    assert finding.message == f"nvmlInit() returned {code} ({name}): {NVML_ERRORS[code].cause}"
    assert finding.fix == NVML_ERRORS[code].cure


def test_the_driver_library_mismatch_is_worded_as_nvidia_smi_users_know_it() -> None:
    finding = nvml_error_finding("driver", "nvml", "nvmlInit()", 18, "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")
    assert finding.message == (
        "nvmlInit() returned 18 (NVML_ERROR_LIB_RM_VERSION_MISMATCH) in /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1: "
        "Driver/library version mismatch: libnvidia-ml.so.1 and the loaded nvidia kernel module differ in version "
        "(upgraded without a reboot)")
    assert finding.fix.startswith("reboot; or stop every process that uses the GPU")
