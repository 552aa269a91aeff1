"""The driver[...] items: each answer of the driver probe worded, its CUDA error codes named from the tables with their
cause and cure; the answers come from the real probe on gcc-built fake drivers (tests/support/fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.driver import (
    cu_result_finding,
    cudart_error_finding,
    gpus_or_reason,
    libcuda_finding,
    nvml_error_finding,
    nvml_finding,
    runtime_compat_finding,
)
from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.probes.child.protocol import LibcudaAnswer, NvmlAnswer
from pytest_cudadeps.probes.driver import probe_driver
from pytest_cudadeps.tables.cuda_errors import CU_RESULTS, NVML_ERRORS
from tests.support.fakes import TWO_GPUS, fake_driver, probe


@pytest.fixture
def driver_550(gcc: str, tmp_path: Path) -> Path:
    return fake_driver(gcc, tmp_path / "550", driver="550.54.14", cuda=12040, gpus=TWO_GPUS)


def test_driver_550_is_too_old_for_the_cuda_13_runtime(driver_550: Path) -> None:
    finding = runtime_compat_finding(probe(driver_550), "13.0", "torch/version.py")
    assert finding.outcome is Outcome.FAIL
    assert finding.message == (
        "NVIDIA driver 550.54.14 (CUDA 12.4) is too old for the CUDA 13.0 runtime in the wheels "
        "(torch/version.py (cuda = '13.0')): CUDA 13.x needs driver >= 580 (CUDA 13.0 GA: 580.65.06)")
    assert finding.fix == ("upgrade the NVIDIA driver to 580.65.06 or newer, or install the torch build for CUDA "
                           "12.4: pip install torch --index-url https://download.pytorch.org/whl/cu124")
    # the same driver runs a CUDA 12.4 build, and a 12.8 one through minor-version compatibility
    assert runtime_compat_finding(probe(driver_550), "12.4", "v.py").outcome is Outcome.PASS
    minor = runtime_compat_finding(probe(driver_550), "12.8", "v.py")
    assert minor.outcome is Outcome.PASS
    assert "minor-version compatibility" in minor.message


def test_no_driver_skips_with_the_reason_or_fails_when_a_gpu_is_required(tmp_path: Path) -> None:
    info = probe(tmp_path)  # an empty folder: this host has no driver at all
    for require_gpu, outcome in ((False, Outcome.SKIP), (True, Outcome.FAIL)):
        lib = libcuda_finding(info, require_gpu=require_gpu)
        nvml = nvml_finding(info, require_gpu=require_gpu)
        compat = runtime_compat_finding(info, "13.0", "torch/version.py", require_gpu=require_gpu)
        gpus = gpus_or_reason(info, "arch", "torch", require_gpu=require_gpu)
        assert isinstance(gpus, Finding)
        assert [f.outcome for f in (lib, nvml, compat, gpus)] == [outcome] * 4
    assert libcuda_finding(info).message == (
        "libcuda.so.1 not found (libcuda.so.1: cannot open shared object file: No such file or directory)")
    assert nvml_finding(info).message.startswith("NVML library not found")
    assert "--cuda-deps-require-gpu" in nvml_finding(info, require_gpu=True).message


def test_cuinit_errors(gcc: str, tmp_path: Path) -> None:
    no_device = probe(fake_driver(gcc, tmp_path / "a", cu_init=100, gpus=()))
    assert libcuda_finding(no_device).outcome is Outcome.SKIP
    assert nvml_finding(no_device).message == "NVIDIA driver 580.65.06 sees no GPU"
    mismatch = libcuda_finding(probe(fake_driver(gcc, tmp_path / "b", cu_init=803)))
    assert mismatch.outcome is Outcome.FAIL
    assert "cuInit(0) returned 803 (CUDA_ERROR_SYSTEM_DRIVER_MISMATCH)" in mismatch.message


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


@pytest.mark.parametrize(("module", "expect"), [
    ("raise ImportError(\"No module named 'pynvml'\")\n", "nvidia-ml-py, this plugin's own dependency, is not importable"),
    ("def nvmlInit(): pass\n", "the deprecated `pynvml` distribution shadows nvidia-ml-py"),  # lacks the rest
])
def test_the_plugins_own_nvml_module_missing_or_shadowed_is_its_own_cause_and_no_failure_without_a_driver(
        gcc: str, tmp_path: Path, module: str, expect: str) -> None:
    """The real child with a pynvml module first on its path: one that cannot be imported (every nvidia-*
    distribution uninstalled takes nvidia-ml-py along) or an old one; the child answers instead of dying."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pynvml.py").write_text(module)
    no_driver = probe_driver(timeout=30, paths=[str(shadow)], env={"LD_LIBRARY_PATH": str(tmp_path / "empty")})
    finding = nvml_finding(no_driver)
    assert finding.outcome is Outcome.SKIP
    assert expect in finding.message
    assert finding.message.endswith("no NVIDIA driver on this host either, so nothing needs it")
    with_driver = probe_driver(timeout=30, paths=[str(shadow)],
                               env={"LD_LIBRARY_PATH": str(fake_driver(gcc, tmp_path / "driver", gpus=TWO_GPUS))})
    finding = nvml_finding(with_driver)
    assert finding.outcome is Outcome.FAIL
    assert expect in finding.message
    assert "-m pip install" in finding.fix
    assert "nvidia-ml-py" in finding.fix


@pytest.mark.parametrize("driver", ["garbage", "580", "580.65.06 (beta)", "9999999.1"])
def test_a_driver_string_that_is_not_a_version_fails_runtime_compat(gcc: str, tmp_path: Path, driver: str) -> None:
    """Before: the driver's CUDA (13.0) ran the runtime and the item passed, whatever NVML called the driver."""
    finding = runtime_compat_finding(probe(fake_driver(gcc, tmp_path / "d", driver=driver, cuda=13000, gpus=TWO_GPUS)),
                                     "13.0", "torch/version.py")
    assert finding.outcome is Outcome.FAIL
    assert finding.message.startswith("the NVIDIA driver reports version ")
    assert finding.message.endswith(", which is not a driver version such as '580.65.06': the CUDA runtime cannot be "
                                    "checked against it")
    assert finding.fix.startswith("reinstall the NVIDIA driver")
