"""The arch[...] item: whether the GPU code of a root's libraries runs on each GPU, and what to install where not;
on gcc-built libraries with hand-made fatbins (tests/support/fatbin.py), on the real torch in the integration tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.arch import arch_finding
from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.engine.fatbin import read_architectures
from tests.support import venvs
from tests.support.fatbin import two_units


@pytest.fixture
def library(gcc: str, tmp_path: Path) -> Path:
    return two_units(gcc, tmp_path / "libkernels.so")


def test_failure_names_the_gpu_its_capability_and_what_is_there(library: Path) -> None:
    libs = [read_architectures(library)]
    finding = arch_finding("torch", libs, [("NVIDIA H100", (9, 0)), ("Tesla T4", (7, 5))])
    assert finding.outcome is Outcome.FAIL
    assert finding.message == "torch has no code for Tesla T4 (compute capability 7.5)"
    assert finding.details == (f"Tesla T4 (compute capability 7.5, sm_75): {library} has cubin sm_80; "
                               "PTX compute_90 (in some containers only: sm_90)",)
    assert "TORCH_CUDA_ARCH_LIST=7.5" in finding.fix
    ok = arch_finding("torch", libs, [("NVIDIA A100", (8, 0))])
    assert ok.outcome is Outcome.PASS
    assert ok.message == "NVIDIA A100: sm_80 cubin"


@pytest.mark.integration
def test_real_torch_primary_library_decides_and_secondary_gaps_are_notes(cuda_venv: Path) -> None:
    """torch 2.14.1 cu130: libtorch_cuda.so has sm_75, libtorch_cuda_linalg.so does not."""
    lib = venvs.site_packages(cuda_venv) / "torch" / "lib"
    libs = [read_architectures(lib / name) for name in ("libtorch_cuda.so", "libtorch_cuda_linalg.so")]
    assert 75 in libs[0].cubin
    assert 75 not in libs[1].cubin
    t4 = arch_finding("torch", libs, [("GPU 0 Tesla T4", (7, 5))], primary="libtorch_cuda.so")
    assert t4.outcome is Outcome.PASS
    assert t4.message.startswith("GPU 0 Tesla T4: sm_75 cubin; note, kernels of these libraries would be missing: ")
    assert "libtorch_cuda_linalg.so has cubin sm_80" in t4.message
    pascal = arch_finding("torch", libs, [("GPU 0 Tesla P100", (6, 0))], primary="libtorch_cuda.so")
    assert pascal.outcome is Outcome.FAIL
    assert pascal.message == "torch has no code for GPU 0 Tesla P100 (compute capability 6.0)"
    # without a primary every library decides, and the T4 fails on linalg
    assert arch_finding("torch", libs, [("GPU 0 Tesla T4", (7, 5))]).outcome is Outcome.FAIL
