"""Triton and ``torch.compile``: what Triton needs besides its own wheel, found the way Triton finds it.

``torch.compile`` (inductor) hands its kernels to Triton, which at the first compiled call
builds a small C launcher against ``libcuda.so.1`` and ``Python.h`` and runs the bundled
``ptxas``.  None of that is in a DT_NEEDED or a Requires-Dist, so the failures come late:
``AssertionError: libcuda.so cannot found!`` (triton-lang/triton#2878), ``RuntimeError: Failed to
find C compiler``, ``fatal error: Python.h: No such file or directory`` (pytorch/pytorch#129351),
``ptxas fatal : Value 'sm_120a' is not defined for option 'gpu-name'`` (triton-lang/triton#8539).

Read from triton 3.8.0 (the wheel torch 2.14.1 pins, ``triton~=3.8.0``):

- ``backends/nvidia/driver.py`` ``libcuda_dirs()``: ``TRITON_LIBCUDA_PATH`` (``knobs.nvidia.libcuda_path``)
  is used as it is, unchecked; else every line of ``/sbin/ldconfig -p`` that contains
  ``libcuda.so.1`` gives a folder; only when there is none, the ``LD_LIBRARY_PATH`` folders
  that hold ``libcuda.so.1``; then ``assert`` that one folder holds it.  The launcher links
  ``-l:libcuda.so.1`` (``libraries = ['libcuda.so.1']``), so no ``libcuda.so`` link is needed.
- ``runtime/build.py`` ``_find_compiler("c")``: ``CC`` when set (any value, even empty, used as
  the program to run), else ``gcc`` on ``PATH``, else ``clang``; ``_build()`` adds
  ``sysconfig.get_paths(scheme)["include"]`` (scheme ``posix_local`` read as ``posix_prefix``)
  for ``Python.h``.
- ``knobs.py`` ``env_nvidia_tool`` / ``NvidiaTool.from_path``: ``TRITON_PTXAS_PATH`` (or
  ``TRITON_PTXAS_BLACKWELL_PATH``) first, then ``backends/nvidia/bin/ptxas`` (``ptxas-blackwell``);
  a tool counts when ``TOOL --version`` prints ``release X.Y``; ``CalledProcessError`` and
  ``FileNotFoundError`` move on to the next path, anything else (``PermissionError`` for a file
  without the execute bit) propagates.  ``backends/nvidia/compiler.py`` ``get_ptxas(arch)``:
  ``ptxas-blackwell`` for compute capability 10.0 and above, ``ptxas`` below;
  ``sm_arch_from_capability``: ``sm_{cc}a`` from 9.0 on, ``sm_{cc}`` before.

The static items (``triton[libcuda]``, ``triton[compiler]``, ``triton[python-h]``,
``triton[version]``) read files and the environment only.  Running ptxas is running the wheel's
code, so :func:`ptxas_finding` and :func:`ptxas_arch_finding` run it in a child process with a
timeout, from an item's ``runtest``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pytest_cudadeps.checks.findings import Finding, failed, passed, unavailable
from pytest_cudadeps.core.safe_io import is_dir, is_regular
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.installers import install_command, reinstall_command
from pytest_cudadeps.engine.ldso import default_dirs, read_ld_so_cache
from pytest_cudadeps.engine.requirements import requirements_of

CHECK = "triton"
LIBCUDA = "libcuda.so.1"
LDCONFIG = Path("/sbin/ldconfig")
TOOLS = ("ptxas", "ptxas-blackwell")
_RELEASE = re.compile(r".*release (\d+\.\d+).*", re.MULTILINE)  # NvidiaTool.from_path's own pattern
_OUTPUT_CAP = 64 << 10


@dataclass(frozen=True)
class Triton:
    """An installed triton with its NVIDIA backend (a triton without one is not a CUDA triton)."""

    dist: Distribution
    package: Path

    @property
    def nvidia(self) -> Path:
        return self.package / "backends" / "nvidia"

    def tool(self, name: str, environ: Mapping[str, str]) -> tuple[Path, ...]:
        """The paths Triton tries for a tool, in its order: the ``TRITON_*_PATH`` variable, then the bundled one."""
        variable = f"TRITON_{name.upper().replace('-', '_')}_PATH"
        bundled = self.nvidia / "bin" / name
        given = environ.get(variable)
        return (Path(given), bundled) if given else (bundled,)


def find_triton(env: Environment) -> Triton | None:
    dist = env.get("triton")
    if dist is None:
        return None
    package = env.package_dir(dist, "triton")
    if package is None or not is_dir(package / "backends" / "nvidia"):
        return None
    return Triton(dist, package)


# --- libcuda, as backends/nvidia/driver.py libcuda_dirs() finds it ------------------------------


@dataclass(frozen=True)
class LibcudaSearch:
    """What ``libcuda_dirs()`` returns (``dirs``), the step that chose them, and what it raises instead."""

    dirs: tuple[Path, ...]
    how: str
    error: str | None = None

    @property
    def found(self) -> Path | None:
        return next((d / LIBCUDA for d in self.dirs if is_regular(d / LIBCUDA)), None)


def libcuda_dirs(environ: Mapping[str, str], cache: Mapping[str, tuple[Path, ...]], ldconfig: Path = LDCONFIG) -> LibcudaSearch:
    """triton 3.8.0's ``libcuda_dirs()``: ``cache`` stands for ``ldconfig -p`` (the same file, ld.so.cache)."""
    given = environ.get("TRITON_LIBCUDA_PATH")
    if given:
        search = LibcudaSearch((Path(given),), f"TRITON_LIBCUDA_PATH={given}")
        if search.found is None:
            # triton returns it unchecked; the launcher then fails to link -l:libcuda.so.1 from there
            return LibcudaSearch(search.dirs, search.how, f"TRITON_LIBCUDA_PATH={given} holds no {LIBCUDA}: "
                                 f"building triton's launcher fails (`cannot find -l:{LIBCUDA}`)")
        return search
    if not os.access(ldconfig, os.X_OK):
        return LibcudaSearch((), str(ldconfig), f"{ldconfig} is missing or not executable: triton runs "
                             f"`{ldconfig} -p` and fails with `FileNotFoundError: [Errno 2] No such file or "
                             f"directory: '{ldconfig}'`")
    locations = [path for name, paths in cache.items() if LIBCUDA in name for path in paths]
    dirs = tuple(dict.fromkeys(path.parent for path in locations))
    how = f"{ldconfig} -p"
    if not dirs and environ.get("LD_LIBRARY_PATH"):
        dirs = tuple(Path(d) for d in environ["LD_LIBRARY_PATH"].split(":") if d and is_regular(Path(d) / LIBCUDA))
        how = "LD_LIBRARY_PATH"
    search = LibcudaSearch(dirs, how)
    if search.found is None:
        hint = (f"Possible files are located at {[str(p) for p in locations]}." if locations else
                "Please make sure GPU is set up and then run \"/sbin/ldconfig\" (requires sudo) to refresh the linker cache.")
        return LibcudaSearch(dirs, how, f"`AssertionError: libcuda.so cannot found!` ({hint})")
    return search


def _driver_elsewhere(host_root: Path) -> Path | None:
    """A sign that a driver is installed although triton does not find libcuda: its kernel module or a libcuda
    in a default folder (where ld.so finds it without the cache, and ldconfig was not run)."""
    module = host_root / "proc" / "driver" / "nvidia" / "version"
    if is_regular(module):
        return module
    return next((d / LIBCUDA for d in default_dirs() if is_regular(d / LIBCUDA)), None)


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
        fix=(f"export TRITON_LIBCUDA_PATH={sign.parent}" if sign is not None and sign.name == LIBCUDA else
             "run `sudo /sbin/ldconfig` after installing the driver, or export TRITON_LIBCUDA_PATH=<folder of "
             f"{LIBCUDA}>"),
    )


# --- the C compiler and Python.h, as runtime/build.py finds them --------------------------------


def find_compiler(environ: Mapping[str, str]) -> tuple[str | None, str, str | None]:
    """(the program triton would run, how it was chosen, why it cannot run), as ``_find_compiler("c")``."""
    path = environ.get("PATH", os.defpath)
    cc = environ.get("CC")
    if cc is not None:
        # triton runs CC as argv[0], unchecked: a value with flags ("gcc -m64") or a missing program fails
        resolved = shutil.which(cc, path=path) if cc else None
        if resolved is None:
            return None, f"CC={cc!r}", (f"CC={cc!r} is not a program on PATH: triton runs it as it is, and building "
                                        f"its launcher fails with `FileNotFoundError` (or `PermissionError`)")
        return resolved, f"CC={cc}", None
    for name in ("gcc", "clang"):  # gcc first: `cc = gcc if gcc is not None else clang`
        resolved = shutil.which(name, path=path)
        if resolved is not None:
            return resolved, f"{name} on PATH", None
    return None, "gcc or clang on PATH", ("neither CC nor gcc nor clang on PATH: `RuntimeError: Failed to find C "
                                          "compiler. Please specify via CC environment variable or set "
                                          "triton.knobs.build.impl.`")


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


def python_include_dir() -> Path:
    """Where triton 3.8.0's ``_build()`` looks for ``Python.h``, for this interpreter (the probes' children run it)."""
    get_default = getattr(sysconfig, "get_default_scheme", None)  # Python 3.10+; triton 3.8 needs 3.10+
    scheme = get_default() if get_default is not None else None
    if scheme == "posix_local":  # Debian's own scheme, which triton maps back
        scheme = "posix_prefix"
    paths = sysconfig.get_paths(scheme=scheme) if scheme else sysconfig.get_paths()
    return Path(paths["include"])


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


# --- ptxas: run, in a child, with a timeout ----------------------------------------------------


@dataclass(frozen=True)
class ToolRun:
    """How one run of a tool ended: its exit status (None: killed at the timeout), its output, or why it did not start."""

    command: tuple[str, ...]
    returncode: int | None
    output: str
    error: str | None = None


def run_tool(command: Sequence[str], timeout: float) -> ToolRun:
    """Run a program of the checked environment in its own session, output to a file, killed with its group at the timeout."""
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                       start_new_session=True)
        except OSError as exc:  # FileNotFoundError, PermissionError, ENOEXEC: what triton would meet too
            return ToolRun(tuple(command), None, "", f"{type(exc).__name__}: {exc}")
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            # the whole group, also after a normal exit: nothing the tool forked may outlive the item
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.seek(0)
        text = output.read(_OUTPUT_CAP).decode("utf-8", "replace")
    return ToolRun(tuple(command), code, text)


def tool_version(triton: Triton, name: str, environ: Mapping[str, str], timeout: float) -> tuple[Path | None, str, list[str]]:
    """(the path triton settles on, its ``release X.Y``, what went wrong with each path tried), as ``env_nvidia_tool``."""
    tried: list[str] = []
    for path in triton.tool(name, environ):
        run = run_tool([str(path), "--version"], timeout)
        if run.error is not None and not run.error.startswith("FileNotFoundError"):
            # NvidiaTool.from_path catches only CalledProcessError and FileNotFoundError: this one propagates
            return None, "", [*tried, f"{path}: {run.error} (triton raises it)"]
        if run.error is not None:
            tried.append(f"{path}: missing")
            continue
        if run.returncode is None:
            tried.append(f"{path}: `--version` still running after {timeout:g} s")
            return None, "", tried
        match = _RELEASE.search(run.output)
        if run.returncode == 0 and match:
            return path, match.group(1), tried
        tried.append(f"{path}: `--version` exited {run.returncode} ({_first_line(run.output)})")
    return None, "", tried


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")[:200]


def _reinstall_triton(triton: Triton) -> str:
    return reinstall_command(triton.dist.installer, f"triton=={triton.dist.version}")


def ptxas_finding(triton: Triton, name: str, environ: Mapping[str, str], timeout: float) -> Finding:
    """``triton[ptxas]`` / ``triton[ptxas-blackwell]``: the tool triton would use answers ``--version``."""
    path, release, tried = tool_version(triton, name, environ, timeout)
    if path is None:
        return failed(CHECK, name, f"{name} does not run: triton raises `RuntimeError: Cannot find {name}` "
                                   f"(or the error below) at the first kernel it compiles",
                      *(f"tried: {line}" for line in tried), fix=_reinstall_triton(triton))
    return passed(CHECK, name, f"{path} is CUDA {release}", path=str(path), release=release)


_PTX = ".version 7.0\n.target sm_75\n.address_size 64\n.visible .entry cudadeps_probe() { ret; }\n"


def gpu_name(capability: tuple[int, int]) -> str:
    """``sm_arch_from_capability``: ``sm_120a`` for 12.0 (the ``a`` from 9.0 on), ``sm_86`` for 8.6."""
    cc = capability[0] * 10 + capability[1]
    return f"sm_{cc}{'a' if cc >= 90 else ''}"


def ptxas_arch_finding(triton: Triton, capabilities: Sequence[tuple[int, int]], environ: Mapping[str, str],
                       timeout: float, *, require_gpu: bool = False) -> Finding:
    """``triton[ptxas-arch]``: for each GPU's compute capability, the ptxas triton picks compiles for it.

    A tiny PTX (target sm_75, which every newer ``--gpu-name`` accepts) is assembled with
    ``--gpu-name=sm_XXa``, as triton's compiler calls ptxas.  The lead's GPU probe supplies the
    capabilities (NVML's); without a GPU it is a skip.
    """
    if not capabilities:
        return unavailable(CHECK, "ptxas-arch", "no GPU to check ptxas against", require_gpu=require_gpu,
                           fix="run on a machine with the GPU")
    lines, bad = [], []
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "probe.ptx"
        source.write_text(_PTX, encoding="ascii")
        for capability in sorted(set(capabilities)):
            name = TOOLS[1] if capability[0] >= 10 else TOOLS[0]  # get_ptxas(arch): arch >= 100
            path, release, _ = tool_version(triton, name, environ, timeout)
            arch = gpu_name(capability)
            if path is None:
                bad.append(f"{arch}: {name} does not run")
                continue
            run = run_tool([str(path), f"--gpu-name={arch}", str(source), "-o", str(Path(work) / "probe.cubin")],
                           timeout)
            if run.returncode == 0:
                lines.append(f"{arch}: {name} {release}")
            else:
                bad.append(f"{arch}: {path} (CUDA {release}) says `{_first_line(run.output or run.error or '')}`")
    if bad:
        return failed(CHECK, "ptxas-arch", f"triton's ptxas cannot compile for this GPU: {bad[0]}", *bad[1:], *lines,
                      fix=f"{install_command(triton.dist.installer, 'triton')} --upgrade (a triton whose ptxas knows "
                          f"the GPU), or export TRITON_{'PTXAS_BLACKWELL' if 'blackwell' in bad[0] else 'PTXAS'}_PATH="
                          f"<a ptxas of a CUDA toolkit that does>")
    return passed(CHECK, "ptxas-arch", "; ".join(lines))
