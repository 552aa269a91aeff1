"""The ``toolchain[...]`` findings: what JIT builds at run time need, checked when the package that builds is
installed (:mod:`pytest_cudadeps.engine.toolchain` finds them as torch and triton do)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import Environment
from pytest_cudadeps.engine.toolchain import (
    CudaHome,
    HostCompiler,
    existing_parent,
    find_cuda_home,
    gnu_bound,
    host_compiler,
    host_config,
    is_noexec,
    older_compilers,
    triton_cache_dir,
    wheel_nvcc,
)

CHECK = "toolchain"
# Packages that build CUDA code with torch.utils.cpp_extension when they first run (FlashInfer's JIT kernels,
# DeepSpeed's op builder): only beside one of them, or with CUDA_HOME/CUDA_PATH set, is CUDA_HOME checked.
JIT_BUILDERS = ("flashinfer-python", "deepspeed")


def cuda_home_finding(env: Environment, environ: Mapping[str, str], which: Callable[[str], str | None] | None = None,
                      default: Path = Path("/usr/local/cuda")) -> Finding | None:
    """``toolchain[cuda-home]``: the CUDA_HOME ``torch.utils.cpp_extension`` takes has a ``bin/nvcc`` (beside torch,
    when a package of :data:`JIT_BUILDERS` is installed, CUDA_HOME/CUDA_PATH is set, or the nvidia-cuda-nvcc wheel is
    installed).

    A CUDA_HOME set by hand that is no folder (a stray ``:``, vllm#21960) fails; so does the wheel's nvcc that torch
    does not find (neither on ``PATH`` nor under CUDA_HOME) beside a JIT builder, whose fix names the wheel's folder.
    No nvcc at all, or the wheel's with nothing installed that builds, is a note.
    """
    if env.get("torch") is None:
        return None
    builders = jit_builders(env)
    explicit = any(environ.get(name) for name in ("CUDA_HOME", "CUDA_PATH"))
    wheel = wheel_nvcc(env.paths)
    if not (builders or explicit or wheel):
        return None
    home = find_cuda_home(environ, which, default)
    use_wheel = f"export CUDA_HOME={quote(str(wheel.parent.parent))}" if wheel is not None else ""
    if home.value is not None and home.how in ("CUDA_HOME", "CUDA_PATH") and not os.path.isdir(home.value):
        return failed(CHECK, "cuda-home", f"{home.how}={home.value!r} is not a folder: torch.utils.cpp_extension "
                                          f"runs {home.value}/bin/nvcc and JIT builds of CUDA extensions fail",
                      fix=use_wheel or f"unset {home.how}")
    nvcc = home.nvcc
    if nvcc is not None and os.access(nvcc, os.X_OK):
        if not (builders or explicit):
            return None  # the wheel's nvcc beside another one torch finds, and nothing that builds
        return passed(CHECK, "cuda-home", f"CUDA_HOME={home.value} ({home.how}): {nvcc}")
    return _no_nvcc(home, wheel, builders)


def _no_nvcc(home: CudaHome, wheel: Path | None, builders: list[str]) -> Finding:
    """torch finds no nvcc: a failure when the wheel's is installed beside a JIT builder, else a note."""
    nvcc = home.nvcc
    use_wheel = f"export CUDA_HOME={quote(str(wheel.parent.parent))}" if wheel is not None else ""
    found = f"{home.how}{'' if nvcc is None else f': no {nvcc}'}"
    if wheel is not None and builders:
        return failed(CHECK, "cuda-home", f"torch.utils.cpp_extension finds no nvcc ({found}), though the "
                                          f"nvidia-cuda-nvcc wheel's is installed: {wheel} is neither on PATH nor "
                                          f"under CUDA_HOME; {', '.join(builders)} JIT-build{'s' if len(builders) == 1 else ''} "
                                          f"CUDA kernels at first use and fail (`OSError: CUDA_HOME environment variable "
                                          f"is not set. Please set it to your CUDA install root.`)",
                      f"source: {_SOURCE}", fix=use_wheel)
    if wheel is not None:
        return skipped(CHECK, "cuda-home", f"note: torch.utils.cpp_extension finds no nvcc ({found}); nothing "
                                           f"installed JIT-builds CUDA code ({', '.join(JIT_BUILDERS)}); for "
                                           f"`torch.utils.cpp_extension.load`: `{use_wheel}` (the nvidia-cuda-nvcc "
                                           f"wheel's {wheel})")
    return skipped(CHECK, "cuda-home", f"note: torch.utils.cpp_extension finds no nvcc ({found}): JIT builds of "
                                       f"CUDA extensions fail")


_SOURCE = ("torch/utils/cpp_extension.py (torch 2.14.1) _find_cuda_home(): CUDA_HOME, CUDA_PATH, the nvcc on PATH, "
           "/usr/local/cuda; then CUDA_HOME/bin/nvcc")


def jit_builders(env: Environment) -> list[str]:
    """The installed packages of :data:`JIT_BUILDERS`."""
    return [key for key in JIT_BUILDERS if env.get(key) is not None]


def _builds_cuda(env: Environment, environ: Mapping[str, str]) -> bool:
    """torch is installed, and a JIT builder beside it or CUDA_HOME/CUDA_PATH set by hand."""
    explicit = any(environ.get(name) for name in ("CUDA_HOME", "CUDA_PATH"))
    return env.get("torch") is not None and (bool(jit_builders(env)) or explicit)


def host_compiler_finding(env: Environment, environ: Mapping[str, str],
                          which: Callable[[str], str | None] | None = None, default: Path = Path("/usr/local/cuda"),
                          compiler: Callable[[Mapping[str, str]], HostCompiler] = host_compiler) -> Finding | None:
    """``toolchain[host-compiler]``: the host compiler nvcc runs is one its ``crt/host_config.h`` accepts.

    The nvcc is the one torch.utils.cpp_extension runs, else the nvidia-cuda-nvcc wheel's; the bound is read from
    the header (nvcc is not run), the compiler's version from ``-dumpfullversion``.  A refused compiler fails
    beside a JIT builder and is a note otherwise; an accepted one is an item only beside a JIT builder.
    """
    if env.get("torch") is None:
        return None
    nvcc = find_cuda_home(environ, which, default).nvcc
    if nvcc is None or not os.access(nvcc, os.X_OK):
        nvcc = wheel_nvcc(env.paths)
    builds = _builds_cuda(env, environ)
    if nvcc is None or "clang" in Path(environ.get("CC", "gcc")).name:
        return None  # clang has bounds of its own in the header, not read here
    header = host_config(nvcc)
    bound = gnu_bound(header)
    if bound is None:
        return None if not builds else skipped(CHECK, "host-compiler", f"note: no gcc bound read from {header}")
    used = compiler(environ)
    if used.major is None:
        return None if not builds else skipped(CHECK, "host-compiler", f"note: {used.problem} ({used.how}); nvcc "
                                                                        f"{nvcc} accepts gcc {bound} and older")
    if used.major <= bound:
        return passed(CHECK, "host-compiler", f"{used.program} {used.version} ({used.how}): {nvcc} accepts gcc "
                                              f"{bound} and older ({header})") if builds else None
    message = (f"{used.program} {used.version} ({used.how}) is newer than {nvcc} accepts: its {header} stops at gcc "
               f"{bound} (`#error -- unsupported GNU version! gcc versions later than {bound} are not supported!`)")
    if not builds:
        return skipped(CHECK, "host-compiler", f"note: {message}; nothing installed JIT-builds CUDA code")
    older = older_compilers(bound, environ)
    fix = (f"export CC={quote(str(older[0]))}" if older else
           f"install gcc {bound} or older (the distribution's gcc-{bound} and g++-{bound} packages) and point CC at it")
    return failed(CHECK, "host-compiler", f"{message}: JIT builds of CUDA extensions fail", f"source: {_SOURCE}; "
                  f"torch passes -ccbin $CC to nvcc when CC is set", fix=fix)


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
    found = (cuda_home_finding(env, environ), host_compiler_finding(env, environ), triton_cache_finding(env, environ))
    return [f for f in found if f is not None]
