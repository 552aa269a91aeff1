"""CUDA_HOME as torch.utils.cpp_extension finds it and triton's cache folder, on real folders."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_cudadeps.engine.toolchain import (
    existing_parent,
    find_cuda_home,
    gnu_bound,
    host_compiler,
    host_config,
    is_noexec,
    older_compilers,
    triton_cache_dir,
)
from tests.support.toolchain import fake_gcc, fake_nvcc, fake_toolkit


def test_cuda_home_is_found_in_torchs_order(tmp_path: Path) -> None:
    nvcc = fake_nvcc(tmp_path / "cuda-13.0")
    env = {"CUDA_HOME": "/opt/a", "CUDA_PATH": "/opt/b", "PATH": str(nvcc.parent)}
    assert find_cuda_home(env).how == "CUDA_HOME"
    assert find_cuda_home({**env, "CUDA_HOME": ""}).value == "/opt/b"
    on_path = find_cuda_home({"PATH": str(nvcc.parent)}, default=tmp_path / "none")
    assert (on_path.value, on_path.nvcc) == (str(tmp_path / "cuda-13.0"), nvcc)
    assert find_cuda_home({"PATH": str(tmp_path)}, default=tmp_path / "cuda-13.0").value == str(tmp_path / "cuda-13.0")
    assert find_cuda_home({"PATH": str(tmp_path)}, default=tmp_path / "none").value is None


def test_triton_cache_folder_and_the_folder_that_decides(tmp_path: Path) -> None:
    assert triton_cache_dir({"TRITON_CACHE_DIR": str(tmp_path / "c")}) == tmp_path / "c"
    assert triton_cache_dir({"TRITON_HOME": str(tmp_path)}) == tmp_path / ".triton" / "cache"
    assert existing_parent(tmp_path / ".triton" / "cache") == tmp_path


def test_noexec_is_read_from_the_mount_flags(tmp_path: Path) -> None:
    flags = os.statvfs(tmp_path).f_flag
    assert is_noexec(tmp_path) == bool(flags & os.ST_NOEXEC)
    real = os.statvfs(tmp_path)
    fake = os.statvfs_result((*real[:8], real.f_flag | os.ST_NOEXEC, real.f_namemax))  # mount -o noexec
    assert is_noexec(tmp_path, statvfs=lambda _: fake)


def test_the_gnu_bound_is_read_from_the_header_before_its_error(tmp_path: Path) -> None:
    nvcc = fake_toolkit(tmp_path / "cuda", 16)
    assert host_config(nvcc) == tmp_path / "cuda" / "include" / "crt" / "host_config.h"
    assert gnu_bound(host_config(nvcc)) == 16  # not Grace clang's 22 nor clang's 23
    assert gnu_bound(tmp_path / "none.h") is None
    (tmp_path / "plain.h").write_text("#if __GNUC__ > 9\n#endif\n", encoding="utf-8")
    assert gnu_bound(tmp_path / "plain.h") is None  # a bound without the error is no bound


def test_the_host_compiler_is_cc_else_gcc_with_its_full_version(tmp_path: Path) -> None:
    gcc = fake_gcc(tmp_path / "bin", "17.1.0")
    fake_gcc(tmp_path / "opt", "14.2.0", "gcc-14")
    used = host_compiler({"PATH": str(tmp_path / "bin")})
    assert (used.program, used.version, used.major) == (str(gcc), "17.1.0", 17)
    chosen = host_compiler({"PATH": str(tmp_path / "bin"), "CC": str(tmp_path / "opt" / "gcc-14")})
    assert (chosen.how, chosen.major) == ("CC", 14)
    missing = host_compiler({"PATH": str(tmp_path / "none")})
    assert missing.major is None
    assert "not a program on PATH" in missing.problem
    path = f"{tmp_path / 'bin'}:{tmp_path / 'opt'}"
    assert older_compilers(16, {"PATH": path}) == [tmp_path / "opt" / "gcc-14"]
    assert older_compilers(13, {"PATH": path}) == []
