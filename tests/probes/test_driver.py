"""The driver probe: a gcc-built fake libcuda.so.1 and libnvidia-ml.so.1 through the real ctypes and nvidia-ml-py
code in a child (a crash or a hang there is an answer); the wheel's real libcudart in the integration tier.

How the driver[...] items word the answers is tests/checks/test_driver.py's.
"""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.checks.driver import libcuda_finding, nvml_finding, runtime_compat_finding
from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.probes.child.protocol import CudartAnswer, LibcudaAnswer
from tests.support import venvs
from tests.support.fakes import TWO_GPUS, fake_driver, misbehaving, probe


@pytest.fixture
def driver_550(gcc: str, tmp_path: Path) -> Path:
    return fake_driver(gcc, tmp_path / "550", driver="550.54.14", cuda=12040, gpus=TWO_GPUS)


@pytest.fixture
def driver_580(gcc: str, tmp_path: Path) -> Path:
    return fake_driver(gcc, tmp_path / "580", driver="580.65.06", cuda=13000, gpus=TWO_GPUS)


def test_fake_driver_through_real_ctypes_and_nvidia_ml_py(driver_580: Path) -> None:
    info = probe(driver_580)
    assert isinstance(info.libcuda, LibcudaAnswer)
    assert info.libcuda.path == str(driver_580 / "libcuda.so.1")
    assert info.driver_cuda == 13000
    assert info.driver_version == "580.65.06"
    assert [(g.name, g.capability, g.memory, g.mig) for g in info.gpus] == [
        ("NVIDIA RTX PRO 6000 Blackwell", (12, 0), 96 << 30, "on"),
        ("NVIDIA H100 80GB HBM3", (9, 0), 80 << 30, "n/a"),  # nvmlDeviceGetMigMode: Not Supported
    ]
    assert [g.uuid for g in info.gpus] == ["GPU-00000000-0000-0000-0000-000000000000",
                                           "GPU-00000000-0000-0000-0000-000000000001"]
    assert [g.nvlinks for g in info.gpus] == [4, None]  # GPU 1 has no NVLink (NOT_SUPPORTED)
    facts = dict(nvml_finding(info).facts)
    assert facts["gpu0_nvlinks"] == "4"
    assert "gpu1_nvlinks" not in facts
    assert facts["p2p"] == "0-1 not supported"
    lib = libcuda_finding(info)
    assert lib.outcome is Outcome.PASS
    assert lib.message.endswith("cuInit ok, supports CUDA 13.0")
    nvml = nvml_finding(info)
    assert nvml.outcome is Outcome.PASS
    assert nvml.message == (
        "driver 580.65.06, CUDA 13.0; GPU 0 NVIDIA RTX PRO 6000 Blackwell (compute capability 12.0, 96 GiB, MIG on); "
        "GPU 1 NVIDIA H100 80GB HBM3 (compute capability 9.0, 80 GiB, MIG n/a)")
    assert runtime_compat_finding(info, "13.0", "torch/version.py").outcome is Outcome.PASS


def test_a_crashing_libcuda_is_a_failure_and_nvml_is_still_asked(gcc: str, tmp_path: Path, driver_580: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "libnvidia-ml.so.1").symlink_to(driver_580 / "libnvidia-ml.so.1")
    segv = misbehaving(gcc, tmp_path, "segv")
    (broken / "libcuda.so.1").symlink_to(segv)
    info = probe(broken)
    lib = libcuda_finding(info)
    assert lib.outcome is Outcome.FAIL
    assert lib.message == "loading libcuda.so.1 and calling cuInit(0) crashed: killed by signal 11 (SIGSEGV)"
    assert nvml_finding(info).outcome is Outcome.PASS


def test_a_hanging_nvml_is_reported_within_the_timeout(gcc: str, tmp_path: Path, driver_580: Path) -> None:
    hung = tmp_path / "hung"
    hung.mkdir()
    (hung / "libcuda.so.1").symlink_to(driver_580 / "libcuda.so.1")
    (hung / "libnvidia-ml.so.1").symlink_to(misbehaving(gcc, tmp_path, "hang"))
    info = probe(hung, timeout=2)
    assert libcuda_finding(info).outcome is Outcome.PASS
    assert nvml_finding(info).message == "initialising NVML (libnvidia-ml.so.1) hung: no answer within 2 s (killed)"


@pytest.mark.integration
def test_the_wheels_cudart_reports_its_version_without_a_driver(cuda_venv: Path, driver_550: Path) -> None:
    cudart = venvs.site_packages(cuda_venv) / "nvidia" / "cu13" / "lib" / "libcudart.so.13"
    info = probe(driver_550, cudart=cudart)
    assert isinstance(info.cudart, CudartAnswer)
    assert info.cudart.version == 13000
    finding = runtime_compat_finding(info, None, "torch/version.py")
    assert finding.outcome is Outcome.FAIL
    assert f"({cudart} (cudaRuntimeGetVersion 13000))" in finding.message


@pytest.mark.integration
def test_the_wheels_cudart_loads_without_a_driver_and_says_so(cuda_venv: Path) -> None:
    """FACTS: without a driver, cudaRuntimeGetVersion gives 13000 and cudaGetDeviceCount returns 35
    (cudaErrorInsufficientDriver): the runtime wheel itself is fine, only the driver is missing."""
    if ctypes.util.find_library("cuda"):
        pytest.skip("this host has a driver's libcuda: the no-driver answers do not apply")
    cudart = venvs.site_packages(cuda_venv) / "nvidia" / "cu13" / "lib" / "libcudart.so.13"
    code = ("import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); v = ctypes.c_int(); n = ctypes.c_int(-1); "
            "print(lib.cudaRuntimeGetVersion(ctypes.byref(v)), v.value, lib.cudaGetDeviceCount(ctypes.byref(n)))")
    out = subprocess.run([sys.executable, "-c", code, str(cudart)], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.split() == ["0", "13000", "35"]
