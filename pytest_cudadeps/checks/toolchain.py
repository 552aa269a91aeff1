"""The ``toolchain[...]`` findings: what JIT builds at run time need, checked when the package that builds is
installed (:mod:`pytest_cudadeps.engine.toolchain` finds them as torch and triton do)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import Environment
from pytest_cudadeps.engine.toolchain import existing_parent, find_cuda_home, is_noexec, triton_cache_dir, wheel_nvcc

CHECK = "toolchain"
# Packages that build CUDA code with torch.utils.cpp_extension when they first run (FlashInfer's JIT kernels,
# DeepSpeed's op builder): only beside one of them, or with CUDA_HOME/CUDA_PATH set, is CUDA_HOME checked.
JIT_BUILDERS = ("flashinfer-python", "deepspeed")


def cuda_home_finding(env: Environment, environ: Mapping[str, str], which: Callable[[str], str | None] | None = None,
                      default: Path = Path("/usr/local/cuda")) -> Finding | None:
    """``toolchain[cuda-home]``: the CUDA_HOME ``torch.utils.cpp_extension`` takes has a ``bin/nvcc`` (beside torch,
    when a package of :data:`JIT_BUILDERS` is installed or CUDA_HOME/CUDA_PATH is set).

    A CUDA_HOME set by hand that is no folder (a stray ``:``, vllm#21960) fails; no nvcc at all is a note: only JIT
    builds of CUDA extensions (FlashInfer, ``load_inline``) need one.
    """
    if not _builds_cuda(env, environ):
        return None
    home = find_cuda_home(environ, which, default)
    wheel = wheel_nvcc(env.paths)
    use_wheel = f"export CUDA_HOME={quote(str(wheel.parent.parent))}" if wheel is not None else ""
    if home.value is not None and home.how in ("CUDA_HOME", "CUDA_PATH") and not os.path.isdir(home.value):
        return failed(CHECK, "cuda-home", f"{home.how}={home.value!r} is not a folder: torch.utils.cpp_extension "
                                          f"runs {home.value}/bin/nvcc and JIT builds of CUDA extensions fail",
                      fix=use_wheel or f"unset {home.how}")
    nvcc = home.nvcc
    if nvcc is None or not os.access(nvcc, os.X_OK):
        hint = f"; the nvidia-cuda-nvcc wheel's nvcc is {wheel} (`{use_wheel}`)" if wheel else ""
        return skipped(CHECK, "cuda-home", f"note: torch.utils.cpp_extension finds no nvcc ({home.how}"
                                           f"{'' if nvcc is None else f': no {nvcc}'}): JIT builds of CUDA extensions "
                                           f"fail{hint}")
    return passed(CHECK, "cuda-home", f"CUDA_HOME={home.value} ({home.how}): {nvcc}")


def _builds_cuda(env: Environment, environ: Mapping[str, str]) -> bool:
    """torch is installed, and a JIT builder beside it or CUDA_HOME/CUDA_PATH set by hand."""
    jit = any(env.get(key) is not None for key in JIT_BUILDERS)
    explicit = any(environ.get(name) for name in ("CUDA_HOME", "CUDA_PATH"))
    return env.get("torch") is not None and (jit or explicit)


def triton_cache_finding(env: Environment, environ: Mapping[str, str],
                         noexec: Callable[[Path], bool] = is_noexec) -> Finding | None:
    """``toolchain[triton-cache]``: triton's kernel cache can be written and its kernels loaded (triton only)."""
    if env.get("triton") is None:
        return None
    wanted = triton_cache_dir(environ)
    folder = existing_parent(wanted)
    where = f"{wanted}" + (f" (created under {folder})" if folder != wanted else "")
    if not os.access(folder, os.W_OK | os.X_OK):
        return failed(CHECK, "triton-cache", f"triton's cache {where} cannot be written: every compiled kernel fails",
                      fix=f"export TRITON_CACHE_DIR={quote(str(_usable_folder(noexec)))}")
    if noexec(folder):
        return failed(CHECK, "triton-cache", f"triton's cache {where} is on a noexec mount: triton cannot load the "
                                             f"kernels it compiles there (`failed to map segment from shared object`)",
                      fix=f"export TRITON_CACHE_DIR={quote(str(_usable_folder(noexec)))}")
    return passed(CHECK, "triton-cache", f"triton's cache {where} is writable, on a mount that allows executables")


def _usable_folder(noexec: Callable[[Path], bool]) -> Path:
    """A folder for the cache that this user can write, on a mount without noexec."""
    for candidate in (Path(os.path.expanduser("~/.cache/triton")), Path("/var/tmp/triton"), Path("/tmp/triton")):
        folder = existing_parent(candidate)
        if os.access(folder, os.W_OK | os.X_OK) and not noexec(folder):
            return candidate
    return Path(os.path.expanduser("~/.cache/triton"))


def toolchain_findings(env: Environment, environ: Mapping[str, str]) -> list[Finding]:
    return [f for f in (cuda_home_finding(env, environ), triton_cache_finding(env, environ)) if f is not None]
