"""Triton's toolchain, found as triton 3.8.0 finds it: libcuda's folders and the C compiler, on fake trees here, against
triton's own lookup functions (in a child of the venv's python) in the integration tier."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_cudadeps.engine.triton import Triton, find_compiler, libcuda_dirs, python_include_dir
from tests.support.build import build_so
from tests.support.triton import executable, venv_triton


def test_triton_libcuda_path_is_taken_as_it_is(tmp_path: Path, gcc: str) -> None:
    lib = build_so(gcc, tmp_path / "driver" / "libcuda.so.1", "int cuInit(unsigned f) { return 0; }\n")
    found = libcuda_dirs({"TRITON_LIBCUDA_PATH": str(lib.parent)}, {}, ldconfig=tmp_path / "no-ldconfig")
    assert (found.dirs, found.found, found.error) == ((lib.parent,), lib, None)
    empty = libcuda_dirs({"TRITON_LIBCUDA_PATH": str(tmp_path)}, {})
    assert empty.error is not None
    assert "holds no libcuda.so.1" in empty.error


def test_ldconfig_entries_come_before_ld_library_path(tmp_path: Path, gcc: str) -> None:
    ldconfig = executable(tmp_path / "sbin", "ldconfig")
    cached = build_so(gcc, tmp_path / "cached" / "libcuda.so.1", "int x;\n")
    other = build_so(gcc, tmp_path / "other" / "libcuda.so.1", "int x;\n")
    environ = {"LD_LIBRARY_PATH": str(other.parent)}
    from_cache = libcuda_dirs(environ, {"libcuda.so.1": (cached,)}, ldconfig=ldconfig)
    assert (from_cache.dirs, from_cache.how) == ((cached.parent,), f"{ldconfig} -p")
    from_path = libcuda_dirs(environ, {"libcudart.so.13": (tmp_path / "x",)}, ldconfig=ldconfig)
    assert (from_path.dirs, from_path.how, from_path.found) == ((other.parent,), "LD_LIBRARY_PATH", other)


def test_no_ldconfig_and_no_libcuda_are_triton_s_own_errors(tmp_path: Path) -> None:
    missing = libcuda_dirs({}, {}, ldconfig=tmp_path / "ldconfig")
    assert missing.error is not None
    assert "FileNotFoundError" in missing.error
    nothing = libcuda_dirs({}, {}, ldconfig=executable(tmp_path, "ldconfig"))
    assert nothing.error is not None
    assert "libcuda.so cannot found!" in nothing.error


def test_compiler_order_is_cc_then_gcc_then_clang(tmp_path: Path) -> None:
    both, clang_only, empty = tmp_path / "both", tmp_path / "clang", tmp_path / "empty"
    gcc, _ = executable(both, "gcc"), executable(both, "clang")
    clang = executable(clang_only, "clang")
    empty.mkdir()
    assert find_compiler({"PATH": str(both)})[:2] == (str(gcc), "gcc on PATH")
    assert find_compiler({"PATH": str(clang_only)})[:2] == (str(clang), "clang on PATH")
    assert find_compiler({"PATH": str(empty), "CC": str(clang)})[:2] == (str(clang), f"CC={clang}")
    assert "Failed to find C compiler" in (find_compiler({"PATH": str(empty)})[2] or "")


# --- the real triton 3.8.0 of the cached venv (read-only) -----------------------------------------


@pytest.fixture
def real_triton(cuda_venv: Path) -> Triton:
    return venv_triton(cuda_venv)


def triton_says(venv: Path, code: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run triton's own code in the venv's python (a child: it is the checked package's code)."""
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **environ})


@pytest.mark.integration
def test_libcuda_dirs_agrees_with_triton_s_own(cuda_venv: Path, real_triton: Triton, tmp_path: Path, gcc: str) -> None:
    lib = build_so(gcc, tmp_path / "driver" / "libcuda.so.1", "int cuInit(unsigned f) { return 0; }\n")
    code = ("from triton.backends.nvidia.driver import libcuda_dirs\n"
            "try:\n    print(libcuda_dirs())\nexcept AssertionError as e:\n    print('AssertionError', e)\n")
    for environ in ({"LD_LIBRARY_PATH": f"/nowhere:{lib.parent}"}, {"TRITON_LIBCUDA_PATH": str(lib.parent)},
                    {"LD_LIBRARY_PATH": ""}):
        theirs = triton_says(cuda_venv, code, environ)
        assert theirs.returncode == 0, theirs.stderr
        ours = libcuda_dirs(environ, {})  # this machine's ld.so.cache has no libcuda.so.1, as ldconfig -p says
        if ours.error is None:
            assert theirs.stdout.strip() == repr([str(d) for d in ours.dirs])
        else:
            assert theirs.stdout.startswith("AssertionError libcuda.so cannot found!")
            assert "libcuda.so cannot found!" in ours.error


@pytest.mark.integration
def test_compiler_and_include_folder_agree_with_triton_s_build(cuda_venv: Path, real_triton: Triton,
                                                                tmp_path: Path) -> None:
    """triton's runtime/build.py _build() with a CC that records its arguments: which program, which -I."""
    record = tmp_path / "argv"
    recorder = executable(tmp_path / "bin", "recorder", f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\n")
    code = (f"from triton.runtime.build import _build\n"
            f"_build('m', 'm.c', {str(tmp_path)!r}, [], [], [], [])\n")
    result = triton_says(cuda_venv, code, {"CC": str(recorder)})
    assert result.returncode == 0, result.stderr
    assert find_compiler({"CC": str(recorder)})[0] == str(recorder)
    includes = [line[2:] for line in record.read_text().splitlines() if line.startswith("-I")]
    # both venvs are made from the same python3.11, so the include folder is the same
    assert str(python_include_dir()) in includes
