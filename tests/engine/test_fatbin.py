from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_cudadeps.checks.arch import arch_finding
from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.engine.fatbin import FatbinError, read_architectures
from tests.support import venvs
from tests.support.bounds import counted_io
from tests.support.build import build_so
from tests.support.fatbin import CUBIN, PTX, container, elf_with_fatbin, entry


@pytest.fixture
def library(gcc: str, tmp_path: Path) -> Path:
    # two compilation units: the first has sm_80 and sm_90 cubins (one with a 112-byte header) and
    # compute_90 PTX; the second only an sm_80 cubin and compute_90 PTX
    data = container(entry(CUBIN, 80, b"\x01" * 13), entry(CUBIN, 90, b"\x02" * 8, header_size=112),
                     entry(PTX, 90, b".version 8.0\n"))
    data += container(entry(CUBIN, 80, b"\x03" * 5), entry(PTX, 90, b".target sm_90\n"))
    return elf_with_fatbin(gcc, tmp_path / "libkernels.so", data)


def test_reads_every_entry_of_every_container(library: Path) -> None:
    found = read_architectures(library)
    assert (found.containers, found.entries) == (2, 5)
    assert found.cubin == {80, 90}
    assert found.ptx == {90}
    assert found.describe() == "cubin sm_80; PTX compute_90 (in some containers only: sm_90)"


@pytest.mark.parametrize(("capability", "how"), [
    ((8, 0), "sm_80 cubin"),
    ((8, 9), "sm_80 cubin"),  # same major, lower minor
    ((9, 0), "compute_90 PTX (JIT-compiled at first use)"),  # the second unit has no sm_90 cubin
    ((12, 0), "compute_90 PTX (JIT-compiled at first use)"),
    ((7, 5), None),
])
def test_coverage_rules(library: Path, capability: tuple[int, int], how: str | None) -> None:
    assert read_architectures(library).runs_on(capability) == how


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


def test_library_without_gpu_code(gcc: str, tmp_path: Path) -> None:
    plain = build_so(gcc, tmp_path / "libplain.so", "int f(void) { return 0; }\n")
    found = read_architectures(plain)
    assert found.variants == frozenset()
    assert found.containers == 0
    finding = arch_finding("torch", [found], [("NVIDIA A100", (8, 0))])
    assert finding.outcome is Outcome.FAIL
    assert finding.message.startswith("no GPU code found")


def test_garbage_in_the_section_is_an_error_not_a_guess(gcc: str, tmp_path: Path) -> None:
    bad = elf_with_fatbin(gcc, tmp_path / "libbad.so", b"\x11\x22\x33\x44" * 8)
    with pytest.raises(FatbinError, match="no fatbin magic at section offset 0x0"):
        read_architectures(bad)


def test_matches_a_fatbin_that_nvcc_builds(tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not Path(nvcc).exists():
        pytest.skip("nvcc is not installed")
    source = tmp_path / "k.cu"
    source.write_text("__global__ void k(float *x) { x[threadIdx.x] *= 2; }\n")
    target = tmp_path / "libk.so"
    subprocess.run([nvcc, "-shared", "-Xcompiler", "-fPIC", "-o", str(target), str(source),
                    "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=compute_90"],
                   check=True, capture_output=True)
    found = read_architectures(target)
    assert found.cubin == {80}
    assert found.ptx == {90}


@pytest.mark.integration
def test_real_libtorch_cuda(cuda_venv: Path) -> None:
    lib = venvs.site_packages(cuda_venv) / "torch" / "lib" / "libtorch_cuda.so"
    with counted_io() as io:
        found = read_architectures(lib)
    assert found.describe().startswith("cubin sm_75, sm_80, sm_86, sm_90, sm_100, sm_120; PTX none")
    assert found.ptx == frozenset()
    # the entries' headers only: a few MB of the 317 MiB section (its payloads are skipped, never read)
    assert io.bytes < 16 << 20, f"read {io.bytes} bytes of {lib}"


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
