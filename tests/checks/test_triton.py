"""The triton[...] items: fake trees here, the real triton of the cached venv in the integration tier (only run,
never written: its ptxas).  How triton's toolchain is found is tests/engine/test_triton.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.checks.triton import (
    compiler_finding,
    libcuda_finding,
    ptxas_arch_finding,
    python_h_finding,
    static_triton_findings,
    version_finding,
)
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.triton import Triton, python_include_dir
from pytest_cudadeps.probes.tools import assemble_for
from tests.support import sitebuilder as sb
from tests.support.triton import executable, ptxas, triton_tree, venv_triton


def ptxas_arch(triton: Triton, capabilities: list[tuple[int, int]], environ: dict[str, str], timeout: float) -> Finding:
    return ptxas_arch_finding(triton, assemble_for(triton, capabilities, environ, timeout))


def test_no_triton_or_a_triton_without_nvidia_backend_gives_no_item(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")  # triton's METADATA, no package folder
    assert static_triton_findings(scan([site]), {}) == []


# --- libcuda -------------------------------------------------------------------------------------


def test_libcuda_without_a_driver_is_a_skip_and_with_one_a_failure(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path)
    bare = tmp_path / "host"
    bare.mkdir()
    assert libcuda_finding(triton, {}, use_ld_cache=False, host_root=bare).outcome is Outcome.SKIP
    assert libcuda_finding(triton, {}, use_ld_cache=False, host_root=bare, require_gpu=True).outcome is Outcome.FAIL
    module = bare / "proc" / "driver" / "nvidia" / "version"
    module.parent.mkdir(parents=True)
    module.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06\n", encoding="utf-8")
    found = libcuda_finding(triton, {}, use_ld_cache=False, host_root=bare)
    assert found.outcome is Outcome.FAIL
    assert "libcuda.so cannot found!" in found.message
    assert "sudo /sbin/ldconfig" in found.fix


# --- the compiler and Python.h -------------------------------------------------------------------


@pytest.mark.parametrize("cc", ["/nowhere/gcc", "gcc -m64", ""])
def test_cc_pointing_nowhere_fails(tmp_path: Path, cc: str) -> None:
    triton = triton_tree(tmp_path)
    found = compiler_finding(triton, {"PATH": str(executable(tmp_path / "bin", "gcc").parent), "CC": cc})
    assert found.outcome is Outcome.FAIL
    assert found.message.startswith(f"CC={cc!r} is not a program on PATH")
    assert found.fix == f"unset CC (triton then takes {tmp_path / 'bin' / 'gcc'}), or export CC=<the path of a C compiler>"


def test_python_h_missing_from_the_include_folder_fails(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path)
    fake_include = tmp_path / "include" / "python3.11"  # a sysconfig include folder without the headers
    fake_include.mkdir(parents=True)
    found = python_h_finding(triton, fake_include)
    assert found.outcome is Outcome.FAIL
    assert "fatal error: Python.h: No such file or directory" in found.message
    assert (python_h_finding(triton).outcome is Outcome.PASS) == (python_include_dir() / "Python.h").is_file()


# --- the version pin -----------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "outcome"), [("3.8.0", Outcome.PASS), ("3.8.2", Outcome.PASS),
                                                  ("3.7.1", Outcome.FAIL), ("3.9.0", Outcome.FAIL)])
def test_version_against_torch_s_pin(tmp_path: Path, version: str, outcome: Outcome) -> None:
    triton = triton_tree(tmp_path, version)
    found = version_finding(scan([triton.dist.location]), triton)
    assert found is not None
    assert found.outcome is outcome
    if outcome is Outcome.FAIL:
        assert found.message.startswith(f"torch 2.14.1 requires triton~=3.8.0, but triton {version} is installed")
        assert found.fix == "pip install 'triton~=3.8.0'"


# --- ptxas ---------------------------------------------------------------------------------------


def test_ptxas_arch_without_a_gpu_skips(tmp_path: Path) -> None:
    assert ptxas_arch(triton_tree(tmp_path), [], {}, 30).outcome is Outcome.SKIP


# --- the real triton 3.8.0 of the cached venv (read-only) -----------------------------------------


@pytest.fixture
def real_triton(cuda_venv: Path) -> Triton:
    return venv_triton(cuda_venv)

@pytest.mark.integration
def test_real_ptxas_and_its_architectures(real_triton: Triton) -> None:
    assert dict(ptxas(real_triton, "ptxas", {}, 60).facts)["path"] == str(real_triton.nvidia / "bin" / "ptxas")
    assert dict(ptxas(real_triton, "ptxas-blackwell", {}, 60).facts)["release"] == "13.3"
    assert ptxas_arch(real_triton, [(8, 0), (9, 0), (12, 0)], {}, 60).outcome is Outcome.PASS
    too_new = ptxas_arch(real_triton, [(13, 0)], {}, 60)
    assert too_new.outcome is Outcome.FAIL
    assert "Value 'sm_130a' is not defined for option 'gpu-name'" in too_new.message
    # an older ptxas given for Blackwell and later (triton-lang/triton#8539's case): ptxas 12.9 lacks sm_110a
    older = {"TRITON_PTXAS_BLACKWELL_PATH": str(real_triton.nvidia / "bin" / "ptxas")}
    thor = ptxas_arch(real_triton, [(11, 0)], older, 60)
    assert thor.outcome is Outcome.FAIL
    assert "(CUDA 12.9) says `ptxas fatal   : Value 'sm_110a' is not defined" in thor.message
