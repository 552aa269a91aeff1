"""The GPU code of a library: every entry of every fatbin container read, and the rules that say which GPUs it runs
on; hand-made fatbins in gcc-built libraries, one built by nvcc where there is one, the real libtorch_cuda.so in the
integration tier.  What the arch[...] item makes of it is tests/checks/test_arch.py's."""

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
from tests.support.fatbin import elf_with_fatbin, two_units


@pytest.fixture
def library(gcc: str, tmp_path: Path) -> Path:
    return two_units(gcc, tmp_path / "libkernels.so")


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
