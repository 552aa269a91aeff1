"""The toolchain[...] items: CUDA_HOME for torch's JIT builds and triton's cache, on sitebuilder trees."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.toolchain import cuda_home_finding, host_compiler_finding, triton_cache_finding
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import scan
from tests.support import sitebuilder as sb
from tests.support.toolchain import fake_gcc, fake_toolkit


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


def _wheel_nvcc(site: Path, bound: int = 16) -> Path:
    return fake_toolkit(site / "nvidia" / "cu13", bound)


def test_the_wheels_nvcc_torch_does_not_find_fails_beside_a_jit_builder_and_the_fix_names_its_folder(
        tmp_path: Path) -> None:
    site = _site(tmp_path, sb.Dist("flashinfer-python", "0.6.0"))
    _wheel_nvcc(site)
    environ = {"PATH": str(tmp_path)}  # no nvcc on PATH, no CUDA_HOME
    found = cuda_home_finding(scan([site]), environ, default=tmp_path / "none")
    assert found is not None
    assert found.outcome is Outcome.FAIL
    assert "flashinfer-python JIT-builds" in found.message
    assert found.fix == f"export CUDA_HOME={quote(str(site / 'nvidia/cu13'))}"
    fixed = {**environ, "CUDA_HOME": str(site / "nvidia/cu13")}  # the fix, as a shell runs it
    after = cuda_home_finding(scan([site]), fixed, default=tmp_path / "none")
    assert after is not None
    assert after.outcome is Outcome.PASS
    assert str(site / "nvidia/cu13/bin/nvcc") in after.message


def test_the_wheels_nvcc_is_a_note_when_nothing_installed_builds(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _wheel_nvcc(site)
    note = cuda_home_finding(scan([site]), {"PATH": str(tmp_path)}, default=tmp_path / "none")
    assert note is not None
    assert note.outcome is Outcome.SKIP
    assert f"export CUDA_HOME={quote(str(site / 'nvidia/cu13'))}" in note.message
    toolkit = fake_toolkit(tmp_path / "cuda", 15)  # another nvcc torch finds: nothing to say
    assert cuda_home_finding(scan([site]), {"PATH": str(toolkit.parent)}, default=tmp_path / "none") is None


def test_a_gcc_newer_than_nvcc_accepts_fails_beside_a_jit_builder_with_an_older_gcc_as_the_fix(tmp_path: Path) -> None:
    site = _site(tmp_path, sb.Dist("deepspeed", "0.18.0"))
    _wheel_nvcc(site, bound=16)
    fake_gcc(tmp_path / "bin", "17.1.0")
    older = fake_gcc(tmp_path / "bin", "16.1.0", "gcc-16")
    environ = {"PATH": str(tmp_path / "bin"), "CUDA_HOME": str(site / "nvidia/cu13")}
    found = host_compiler_finding(scan([site]), environ)
    assert found is not None
    assert found.outcome is Outcome.FAIL
    assert "17.1.0" in found.message
    assert "gcc versions later than 16 are not supported" in found.message
    assert found.fix == f"export CC={quote(str(older))}"
    alone = host_compiler_finding(scan([site]), {**environ, "PATH": str(tmp_path / "bin-17")})
    assert alone is not None  # no gcc on that PATH: nothing to compare, a note beside a JIT builder
    assert alone.outcome is Outcome.SKIP
    assert "not a program on PATH" in alone.message
    older.rename(tmp_path / "gcc-16-elsewhere")
    none_older = host_compiler_finding(scan([site]), environ)
    assert none_older is not None
    assert none_older.fix == "install gcc 16 or older (the distribution's gcc-16 and g++-16 packages) and point CC at it"
    older = (tmp_path / "gcc-16-elsewhere").rename(older)
    after = host_compiler_finding(scan([site]), {**environ, "CC": str(older)})
    assert after is not None
    assert after.outcome is Outcome.PASS


def test_a_refused_gcc_is_a_note_without_a_jit_builder_and_an_accepted_one_says_nothing(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _wheel_nvcc(site, bound=14)
    fake_gcc(tmp_path / "bin", "15.2.0")
    environ = {"PATH": str(tmp_path / "bin")}
    note = host_compiler_finding(scan([site]), environ, default=tmp_path / "none")
    assert note is not None
    assert note.outcome is Outcome.SKIP
    assert "later than 14" in note.message
    fake_gcc(tmp_path / "old", "12.2.0")
    assert host_compiler_finding(scan([site]), {"PATH": str(tmp_path / "old")}, default=tmp_path / "none") is None
    no_torch = sb.build(tmp_path / "bare", [sb.Dist("flashinfer-python", "0.6.0")])
    assert host_compiler_finding(scan([no_torch]), environ, default=tmp_path / "none") is None
