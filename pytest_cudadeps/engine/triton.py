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
code, so :mod:`pytest_cudadeps.probes.tools` runs it in a process of its own with a timeout, from an
item's ``runtest``.
"""

from __future__ import annotations

import os
import re
import shutil
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.core.safe_io import is_dir, is_regular
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.ldso import default_dirs

LIBCUDA = "libcuda.so.1"
LDCONFIG = Path("/sbin/ldconfig")
TOOLS = ("ptxas", "ptxas-blackwell")
RELEASE = re.compile(r".*release (\d+\.\d+).*", re.MULTILINE)  # NvidiaTool.from_path's own pattern


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
    """triton 3.8.0's ``libcuda_dirs()``: ``cache`` stands for ``ldconfig -p`` (the same file, ld.so.cache).

    Its order: ``TRITON_LIBCUDA_PATH`` when set (taken unchecked); else the folders of every
    cached name containing libcuda.so.1, as ``ldconfig -p`` lists them; only when it lists none,
    the ``LD_LIBRARY_PATH`` folders that hold libcuda.so.1.
    """
    given = environ.get("TRITON_LIBCUDA_PATH")
    if given:
        return _from_variable(given)
    if not os.access(ldconfig, os.X_OK):
        return LibcudaSearch((), str(ldconfig), f"{ldconfig} is missing or not executable: triton runs "
                             f"`{ldconfig} -p` and fails with `FileNotFoundError: [Errno 2] No such file or "
                             f"directory: '{ldconfig}'`")
    locations = [path for name, paths in cache.items() if LIBCUDA in name for path in paths]
    search = _from_cache_or_library_path(environ, locations, ldconfig)
    if search.found is None:
        hint = (f"Possible files are located at {[str(p) for p in locations]}." if locations else
                "Please make sure GPU is set up and then run \"/sbin/ldconfig\" (requires sudo) to refresh the linker cache.")
        return LibcudaSearch(search.dirs, search.how, f"`AssertionError: libcuda.so cannot found!` ({hint})")
    return search


def _from_variable(given: str) -> LibcudaSearch:
    search = LibcudaSearch((Path(given),), f"TRITON_LIBCUDA_PATH={given}")
    if search.found is None:
        # triton returns it unchecked; the launcher then fails to link -l:libcuda.so.1 from there
        return LibcudaSearch(search.dirs, search.how, f"TRITON_LIBCUDA_PATH={given} holds no {LIBCUDA}: "
                             f"building triton's launcher fails (`cannot find -l:{LIBCUDA}`)")
    return search


def _from_cache_or_library_path(environ: Mapping[str, str], locations: list[Path], ldconfig: Path) -> LibcudaSearch:
    """The folders of ``ldconfig -p``'s libcuda files; without any, the LD_LIBRARY_PATH folders that hold one."""
    dirs = tuple(dict.fromkeys(path.parent for path in locations))
    if dirs or not environ.get("LD_LIBRARY_PATH"):
        return LibcudaSearch(dirs, f"{ldconfig} -p")
    return LibcudaSearch(tuple(Path(d) for d in environ["LD_LIBRARY_PATH"].split(":")
                               if d and is_regular(Path(d) / LIBCUDA)), "LD_LIBRARY_PATH")


def _driver_elsewhere(host_root: Path) -> Path | None:
    """A sign that a driver is installed although triton does not find libcuda: its kernel module or a libcuda
    in a default folder (where ld.so finds it without the cache, and ldconfig was not run)."""
    module = host_root / "proc" / "driver" / "nvidia" / "version"
    if is_regular(module):
        return module
    return next((d / LIBCUDA for d in default_dirs() if is_regular(d / LIBCUDA)), None)


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


def python_include_dir() -> Path:
    """Where triton 3.8.0's ``_build()`` looks for ``Python.h``, for this interpreter (the probes' children run it)."""
    get_default = getattr(sysconfig, "get_default_scheme", None)  # Python 3.10+; triton 3.8 needs 3.10+
    scheme = get_default() if get_default is not None else None
    if scheme == "posix_local":  # Debian's own scheme, which triton maps back
        scheme = "posix_prefix"
    paths = sysconfig.get_paths(scheme=scheme) if scheme else sysconfig.get_paths()
    return Path(paths["include"])
