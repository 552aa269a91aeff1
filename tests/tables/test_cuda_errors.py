"""The CUDA error tables: every code the probes meet, with a cause and a cure, named as the toolkit's headers and
nvidia-ml-py name them.  How the driver[...] items word a code is tests/checks/test_driver.py's."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pynvml
import pytest

from pytest_cudadeps.tables.cuda_errors import CU_RESULTS, CUDART_ERRORS, NVML_ERRORS, DriverError, cu_error, cudart_error, nvml_error

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
