"""The ``triton[...]`` findings: what Triton needs beside its wheel, found as triton 3.8.0 finds it
(:mod:`pytest_cudadeps.engine.triton`), and its ptxas as it answered (:mod:`pytest_cudadeps.probes.tools`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pytest_cudadeps.checks.findings import Finding, failed, passed, unavailable
from pytest_cudadeps.core.safe_io import is_regular
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import Environment
from pytest_cudadeps.engine.installers import install_command, reinstall_command
from pytest_cudadeps.engine.ldso import read_ld_so_cache
from pytest_cudadeps.engine.requirements import requirements_of
from pytest_cudadeps.engine.triton import (
    LIBCUDA,
    Triton,
    _driver_elsewhere,
    find_compiler,
    find_triton,
    libcuda_dirs,
    python_include_dir,
)
from pytest_cudadeps.probes.tools import Assembled, ToolVersion, first_line

CHECK = "triton"


def libcuda_finding(triton: Triton, environ: Mapping[str, str], *, use_ld_cache: bool = True,
                    host_root: Path = Path("/"), require_gpu: bool = False) -> Finding:
    """``triton[libcuda]``: libcuda.so.1 where triton's ``libcuda_dirs()`` looks; no driver at all is a skip."""
    search = libcuda_dirs(environ, read_ld_so_cache() if use_ld_cache else {})
    found = search.found
    if found is not None and search.error is None:
        return passed(CHECK, "libcuda", f"{found} (found as {triton.dist} finds it: {search.how})",
                      path=str(found), via=search.how)
    sign = _driver_elsewhere(host_root)
    if sign is None and not environ.get("TRITON_LIBCUDA_PATH") and search.error and "cannot found" in search.error:
        return unavailable(CHECK, "libcuda", f"no NVIDIA driver here: {LIBCUDA} is in no folder triton searches "
                           f"({search.how}) and {host_root / 'proc/driver/nvidia/version'} is absent",
                           require_gpu=require_gpu, fix="install the NVIDIA driver (or run the container with --gpus)")
    seen = f"a driver is installed ({sign})" if sign else "no driver sign seen"
    return failed(
        CHECK, "libcuda",
        f"triton cannot find {LIBCUDA}: the first torch.compile'd call fails with {search.error}",
        f"searched as triton 3.8.0's libcuda_dirs() does: {search.how}"
        + (f" ({', '.join(str(d) for d in search.dirs)})" if search.dirs else ""),
        seen,
        fix=(f"export TRITON_LIBCUDA_PATH={quote(str(sign.parent))}" if sign is not None and sign.name == LIBCUDA else
             "run `sudo /sbin/ldconfig` after installing the driver, or export TRITON_LIBCUDA_PATH=<folder of "
             f"{LIBCUDA}>"),
    )


def compiler_finding(triton: Triton, environ: Mapping[str, str]) -> Finding:
    """``triton[compiler]``: the C compiler triton builds its launcher with."""
    program, how, problem = find_compiler(environ)
    if problem is not None or program is None:
        fallback = find_compiler({k: v for k, v in environ.items() if k != "CC"})[0]
        if "CC" in environ:
            fix = f"unset CC (triton then takes {fallback})" if fallback else "unset CC and install gcc"
            fix += ", or export CC=<the path of a C compiler>"
        else:
            fix = "install a C compiler (`apt-get install gcc`, `dnf install gcc`) or export CC=/path/to/gcc"
        return failed(CHECK, "compiler", f"{problem}; torch.compile cannot build triton's launcher",
                      f"chosen as {triton.dist}'s runtime/build.py _find_compiler does: CC, then gcc, then clang",
                      f"PATH: {environ.get('PATH', '(unset)')}", fix=fix)
    return passed(CHECK, "compiler", f"{program} ({how})", path=program, via=how)


def python_h_finding(triton: Triton, include_dir: Path | None = None) -> Finding:
    """``triton[python-h]``: ``Python.h`` in the interpreter's sysconfig include folder."""
    include_dir = include_dir or python_include_dir()
    header = include_dir / "Python.h"
    if is_regular(header):
        return passed(CHECK, "python-h", f"{header} (sysconfig include folder of {sys.executable})", path=str(header))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return failed(
        CHECK, "python-h",
        f"{header} is missing: torch.compile fails when triton builds its launcher "
        f"(`fatal error: Python.h: No such file or directory`)",
        f"read as {triton.dist}'s runtime/build.py does: sysconfig.get_paths(scheme)['include'] of {sys.executable}",
        fix=f"install the Python headers: `apt-get install python{version}-dev` (Debian, Ubuntu) or "
            f"`dnf install python{version}-devel` (Fedora, RHEL); a python.org or pyenv build has them",
    )


# --- triton's version against torch's pin ------------------------------------------------------
def version_finding(env: Environment, triton: Triton) -> Finding | None:
    """``triton[version]``: the installed triton satisfies torch's Requires-Dist on it; None without torch."""
    torch = env.get("torch")
    if torch is None:
        return None
    pins = [req for req in requirements_of(torch) if canonicalize_name(req.name) == "triton"]
    if not pins:
        return passed(CHECK, "version", f"{torch} declares no requirement on triton here; {triton.dist} is installed")
    try:
        installed = Version(triton.dist.version)
    except InvalidVersion:
        return failed(CHECK, "version", f"triton's version {triton.dist.version!r} is not a valid version",
                      fix=reinstall_command(triton.dist.installer, f"triton{pins[0].specifier}"))
    refused = [r for r in pins if not r.specifier.contains(installed, prereleases=True)]
    if refused:
        return failed(
            CHECK, "version",
            f"{torch} requires triton{refused[0].specifier}, but {triton.dist} is installed: torch.compile's generated "
            f"code targets another triton",
            f"triton: {triton.dist.meta_dir}",
            fix=install_command(torch.installer, f"triton{refused[0].specifier}"),
        )
    return passed(CHECK, "version", f"{triton.dist} satisfies {torch}'s triton{pins[0].specifier}")


def static_triton_findings(env: Environment, environ: Mapping[str, str], *, use_ld_cache: bool = True,
                           host_root: Path = Path("/"), require_gpu: bool = False) -> list[Finding]:
    """The static ``triton[...]`` items; nothing when no triton with an NVIDIA backend is installed."""
    triton = find_triton(env)
    if triton is None:
        return []
    findings = [libcuda_finding(triton, environ, use_ld_cache=use_ld_cache, host_root=host_root,
                                require_gpu=require_gpu),
                compiler_finding(triton, environ), python_h_finding(triton)]
    version = version_finding(env, triton)
    return findings + ([version] if version is not None else [])


def _reinstall_triton(triton: Triton) -> str:
    return reinstall_command(triton.dist.installer, f"triton=={triton.dist.version}")


def ptxas_finding(triton: Triton, name: str, found: ToolVersion) -> Finding:
    """``triton[ptxas]`` / ``triton[ptxas-blackwell]``: the tool triton would use answers ``--version``."""
    if found.path is None:
        return failed(CHECK, name, f"{name} does not run: triton raises `RuntimeError: Cannot find {name}` "
                                   f"(or the error below) at the first kernel it compiles",
                      *(f"tried: {line}" for line in found.tried), fix=_reinstall_triton(triton))
    return passed(CHECK, name, f"{found.path} is CUDA {found.release}", path=str(found.path), release=found.release)


def ptxas_arch_finding(triton: Triton, assembled: Sequence[Assembled], *, require_gpu: bool = False) -> Finding:
    """``triton[ptxas-arch]``: for each GPU's compute capability, the ptxas triton picks compiles for it
    (:func:`pytest_cudadeps.probes.tools.assemble_for`); without a GPU it is a skip."""
    if not assembled:
        return unavailable(CHECK, "ptxas-arch", "no GPU to check ptxas against", require_gpu=require_gpu,
                           fix="run on a machine with the GPU")
    lines, bad = [], []
    for one in assembled:
        version = one.version
        if one.run is None:
            bad.append(f"{one.arch}: {one.tool} does not run")
        elif one.run.returncode == 0:
            lines.append(f"{one.arch}: {one.tool} {version.release}")
        else:
            said = first_line(one.run.output or one.run.error or "")
            bad.append(f"{one.arch}: {version.path} (CUDA {version.release}) says `{said}`")
    if bad:
        return failed(CHECK, "ptxas-arch", f"triton's ptxas cannot compile for this GPU: {bad[0]}", *bad[1:], *lines,
                      fix=f"{install_command(triton.dist.installer, 'triton')} --upgrade (a triton whose ptxas knows "
                          f"the GPU), or export TRITON_{'PTXAS_BLACKWELL' if 'blackwell' in bad[0] else 'PTXAS'}_PATH="
                          f"<a ptxas of a CUDA toolkit that does>")
    return passed(CHECK, "ptxas-arch", "; ".join(lines))
