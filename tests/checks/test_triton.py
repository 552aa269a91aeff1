"""Triton's toolchain, found as triton 3.8.0 finds it: fake trees here, the real triton of the cached venv in the
integration tier (only run, never written: its ptxas, and its own lookup functions in a child of the venv's python)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.checks.triton import (
    compiler_finding,
    libcuda_finding,
    ptxas_arch_finding,
    ptxas_finding,
    python_h_finding,
    static_triton_findings,
    version_finding,
)
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.triton import Triton, find_compiler, find_triton, libcuda_dirs, python_include_dir
from pytest_cudadeps.probes.tools import assemble_for, gpu_name, tool_version
from tests.support import sitebuilder as sb
from tests.support import venvs
from tests.support.build import build_so

NVIDIA_BIN = "triton/backends/nvidia/bin"
FAKE_PTXAS = "#!/bin/sh\necho 'ptxas: NVIDIA (R) Ptx optimizing assembler'\necho 'Cuda compilation tools, release 12.9, V12.9.86'\n"



def ptxas(triton: Triton, name: str, environ: dict[str, str], timeout: float) -> Finding:
    """The item as the plan runs it: the tool asked in its own process, then worded."""
    return ptxas_finding(triton, name, tool_version(triton, name, environ, timeout))


def ptxas_arch(triton: Triton, capabilities: list[tuple[int, int]], environ: dict[str, str], timeout: float) -> Finding:
    return ptxas_arch_finding(triton, assemble_for(triton, capabilities, environ, timeout))

def triton_tree(tmp_path: Path, version: str = "3.8.0", ptxas: str | None = FAKE_PTXAS) -> Triton:
    files = {"triton/__init__.py": "", "triton/backends/nvidia/__init__.py": ""}
    if ptxas is not None:
        files[f"{NVIDIA_BIN}/ptxas"] = ptxas
    site = sb.torch_2_14_1(tmp_path / "site", omit=["triton"], extra=[sb.Dist("triton", version, files=files)])
    if ptxas is not None:
        (site / NVIDIA_BIN / "ptxas").chmod(0o755)
    found = find_triton(scan([site]))
    assert found is not None
    return found


def executable(folder: Path, name: str, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def test_no_triton_or_a_triton_without_nvidia_backend_gives_no_item(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")  # triton's METADATA, no package folder
    assert static_triton_findings(scan([site]), {}) == []


# --- libcuda -------------------------------------------------------------------------------------


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


def test_compiler_order_is_cc_then_gcc_then_clang(tmp_path: Path) -> None:
    both, clang_only, empty = tmp_path / "both", tmp_path / "clang", tmp_path / "empty"
    gcc, _ = executable(both, "gcc"), executable(both, "clang")
    clang = executable(clang_only, "clang")
    empty.mkdir()
    assert find_compiler({"PATH": str(both)})[:2] == (str(gcc), "gcc on PATH")
    assert find_compiler({"PATH": str(clang_only)})[:2] == (str(clang), "clang on PATH")
    assert find_compiler({"PATH": str(empty), "CC": str(clang)})[:2] == (str(clang), f"CC={clang}")
    assert "Failed to find C compiler" in (find_compiler({"PATH": str(empty)})[2] or "")


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


def test_a_fake_ptxas_runs_and_its_release_is_read(tmp_path: Path) -> None:
    found = ptxas(triton_tree(tmp_path), "ptxas", {}, 30)
    assert found.outcome is Outcome.PASS
    assert found.message.endswith("ptxas is CUDA 12.9")


def test_missing_ptxas_fails_and_a_missing_variable_falls_back(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path)
    assert ptxas(triton, "ptxas", {"TRITON_PTXAS_PATH": "/nowhere/ptxas"}, 30).outcome is Outcome.PASS
    gone = ptxas(triton, "ptxas-blackwell", {}, 30)
    assert gone.outcome is Outcome.FAIL
    assert "Cannot find ptxas-blackwell" in gone.message
    assert gone.details == (f"tried: {triton.nvidia / 'bin' / 'ptxas-blackwell'}: missing",)


def test_a_ptxas_without_execute_bit_is_the_permission_error_triton_raises(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path)
    (triton.nvidia / "bin" / "ptxas").chmod(0o644)
    found = ptxas(triton, "ptxas", {}, 30)
    assert found.outcome is Outcome.FAIL
    assert "PermissionError" in found.details[0]
    assert "(triton raises it)" in found.details[0]


def test_a_hanging_ptxas_is_killed_at_the_timeout(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path, ptxas="#!/bin/sh\nsleep 30 &\nsleep 30\n")
    found = ptxas(triton, "ptxas", {}, 0.5)
    assert found.outcome is Outcome.FAIL
    assert "still running after 0.5 s" in found.details[0]


def test_gpu_names_as_triton_writes_them() -> None:
    assert [gpu_name(c) for c in [(8, 6), (9, 0), (12, 0)]] == ["sm_86", "sm_90a", "sm_120a"]


def test_ptxas_arch_without_a_gpu_skips(tmp_path: Path) -> None:
    assert ptxas_arch(triton_tree(tmp_path), [], {}, 30).outcome is Outcome.SKIP


# --- the real triton 3.8.0 of the cached venv (read-only) -----------------------------------------


@pytest.fixture
def real_triton(cuda_venv: Path) -> Triton:
    found = find_triton(scan([venvs.site_packages(cuda_venv)]))
    assert found is not None
    return found


def triton_says(venv: Path, code: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run triton's own code in the venv's python (a child: it is the checked package's code)."""
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **environ})


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
