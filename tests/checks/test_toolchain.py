"""The toolchain[...] items: CUDA_HOME for torch's JIT builds and triton's cache, on sitebuilder trees."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.toolchain import cuda_home_finding, triton_cache_finding
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import scan
from tests.support import sitebuilder as sb


def _site(tmp_path: Path, *extra: sb.Dist) -> Path:
    return sb.build(tmp_path / "site", [sb.Dist("torch", "2.14.1"), *extra])


def test_a_cuda_home_that_is_no_folder_fails_and_points_at_the_wheels_nvcc(tmp_path: Path) -> None:
    site = _site(tmp_path)
    nvcc = site / "nvidia/cu13/bin/nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\n", encoding="utf-8")
    nvcc.chmod(0o755)
    found = cuda_home_finding(scan([site]), {"CUDA_HOME": "/usr/local/cuda:"})
    assert found is not None
    assert found.outcome is Outcome.FAIL
    assert found.fix == f"export CUDA_HOME={quote(str(site / 'nvidia/cu13'))}"
    passing = cuda_home_finding(scan([site]), {"CUDA_HOME": str(site / "nvidia/cu13")})
    assert passing is not None
    assert passing.outcome is Outcome.PASS


def test_no_nvcc_is_a_note_and_nothing_without_torch_or_a_jit_builder(tmp_path: Path) -> None:
    assert cuda_home_finding(scan([_site(tmp_path / "plain")]), {"PATH": str(tmp_path)}) is None  # nothing builds
    site = _site(tmp_path, sb.Dist("flashinfer-python", "0.6.0"))
    note = cuda_home_finding(scan([site]), {"PATH": str(tmp_path)}, which=lambda _: None, default=tmp_path / "none")
    assert note is not None
    assert note.outcome is Outcome.SKIP
    assert "JIT builds of CUDA extensions fail" in note.message
    assert cuda_home_finding(scan([sb.build(tmp_path / "empty", [])]), {}) is None


def test_triton_cache_on_a_noexec_mount_fails_with_a_folder_that_works(tmp_path: Path) -> None:
    site = _site(tmp_path, sb.Dist("triton", "3.8.0"))
    cache = tmp_path / "cache"
    environ = {"TRITON_CACHE_DIR": str(cache)}
    ok = triton_cache_finding(scan([site]), environ)
    assert ok is not None
    assert ok.outcome is Outcome.PASS
    refused = triton_cache_finding(scan([site]), environ, noexec=lambda path: path == tmp_path)
    assert refused is not None
    assert refused.outcome is Outcome.FAIL
    assert refused.fix.startswith("export TRITON_CACHE_DIR=")
    assert str(tmp_path) not in refused.fix
