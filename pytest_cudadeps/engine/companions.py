"""Companion packages and extensions: every distribution whose ELF files link against torch's libraries.

torchvision, torchaudio, xformers, flash-attn and any ``torch.utils.cpp_extension`` build are
compiled against one torch.  Beside another one they import with ``undefined symbol: NAME``
(or, where the package catches that, fail later: torchvision 0.28.0 beside torch 2.14.1 says
``RuntimeError: operator torchvision::nms does not exist``).  Three static questions per
companion, each an item:

- ``companion[NAME>torch-pin]``: does the installed torch satisfy the companion's declared
  requirement on torch (``torchvision 0.28.0 requires torch==2.13.0``)?
- ``companion[NAME>build]``: do the recorded builds agree: the local version tags (``+cu130``,
  ``+cpu``) of torch and the companion, and build records such as xformers' ``cpp_lib.json``?
- ``companion[NAME>symbols]``: does torch define every symbol the companion's extensions import
  from it?  A missing one is named as the loader prints it, and the C++ ABI flip
  (``_GLIBCXX_USE_CXX11_ABI``) is told apart from version skew.

torch's exported symbols are read once, and only when some companion is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pytest_cudadeps.core.safe_io import read_text
from pytest_cudadeps.engine.distributions import Distribution, Environment, read_version_module
from pytest_cudadeps.engine.elf import ElfInfo, ElfProblem, dynamic_symbols, needed_names
from pytest_cudadeps.engine.owners import is_shared_object_name
from pytest_cudadeps.engine.requirements import requirements_of
from pytest_cudadeps.tables.wheels import CUDA_PREFIXES

# libc10.so, libc10_cuda.so, libtorch.so, libtorch_cpu.so, libtorch_cuda.so, libtorch_python.so...
TORCH_LIBRARY = re.compile(r"lib(?:c10|torch)\w*\.so$")
# What an extension takes from torch: C++ names in c10::, at::, torch::, caffe2:: (mangled), and the
# C functions of torch's stable ABI (``aoti_torch_*``, ``torch_*``) that torchvision 0.29 uses.
TORCH_SYMBOL = r"(?:_Z\w*?(?:3c10|2at|5torch|6caffe2)|aoti_torch_|torch_)"
_CXX11_STRING = "__cxx11"


@dataclass(frozen=True)
class Extension:
    """One shared object of a companion and the torch libraries it needs."""

    path: Path
    torch_needed: tuple[str, ...]


@dataclass(frozen=True)
class Companion:
    """A distribution with at least one extension linked against torch."""

    dist: Distribution
    extensions: tuple[Extension, ...]

    def package_dirs(self) -> tuple[Path, ...]:
        """The top-level folders that hold its extensions (``site-packages/torchvision``)."""
        tops = []
        for ext in self.extensions:
            rel = ext.path.relative_to(self.dist.location)
            tops.append(self.dist.location / rel.parts[0])
        return tuple(dict.fromkeys(p for p in tops if p.is_dir()))


@dataclass(frozen=True)
class TorchSide:
    """What the companions are compared with: the torch on the path, its version tag and its libraries."""

    dist: Distribution
    full_version: str  # torch/version.py's __version__ (2.14.1+cu130), else the METADATA version
    libraries: tuple[Path, ...]

    @property
    def local(self) -> str | None:
        return _local(self.full_version)


def find_companions(
    env: Environment, *, skip: Iterable[str] = ("torch",), known: Mapping[Path, ElfInfo | ElfProblem] | None = None,
) -> tuple[Companion, ...]:
    """Every distribution (the copy Python uses) with a shared object whose DT_NEEDED names a torch library.

    ``known`` holds ELF facts already read (the linkage walk's), so that no file is read twice.
    """
    known = known or {}
    skipped = {canonicalize_name(name) for name in skip}
    found = []
    for key in sorted(env.by_key):
        dist = env.get(key)
        if dist is None or key in skipped or key.startswith(CUDA_PREFIXES):
            continue  # the nvidia-*/cuda-* wheels are C libraries below torch, never above it
        extensions = []
        for entry in dist.record_entries(".so"):  # torch-sized RECORDs: only the lines that can name a library
            path = Path(os.path.normpath(dist.location / entry.path))
            if not is_shared_object_name(path.name) or not path.is_file():
                continue
            info = known.get(path)
            names = info.needed if isinstance(info, ElfInfo) else needed_names(path)
            needed = tuple(n for n in names if TORCH_LIBRARY.match(n))
            if needed:
                extensions.append(Extension(path, needed))
        if extensions:
            found.append(Companion(dist, tuple(extensions)))
    return tuple(found)


def torch_side(env: Environment) -> TorchSide | None:
    torch = env.get("torch")
    if torch is None:
        return None
    package = env.package_dir(torch, "torch")
    full = torch.version
    if package is None:
        return TorchSide(torch, full, ())
    with contextlib.suppress(OSError, ValueError, SyntaxError):  # the cuda-major item names a broken version.py
        full = read_version_module(package).get("__version__") or full
    libraries = sorted({*package.glob("lib/*.so*"), *package.glob("_C*.so")})
    return TorchSide(torch, full, tuple(p for p in libraries if p.is_file()))


# --- the declared requirement on torch -----------------------------------------------------------


def torch_requirements(dist: Distribution) -> list[Requirement]:
    """The companion's requirements on torch whose markers hold here (no extra)."""
    return [req for req in requirements_of(dist) if canonicalize_name(req.name) == "torch"]


def matching_release(companion: Distribution, torch_version: str) -> str | None:
    """The companion's release series built for this torch, where PyTorch's own table gives it.

    pytorch/vision's README pairs torchvision 0.(M+15) with torch 2.M (0.28 with 2.13, 0.29 with
    2.14, as the wheels' Requires-Dist say); torchaudio has shared torch's version since 2.1.
    """
    try:
        release = Version(torch_version).release
    except InvalidVersion:
        return None
    if len(release) < 2 or release[0] != 2:
        return None
    if companion.key == "torchvision":
        return f"{companion.name}=={0}.{release[1] + 15}.*"
    if companion.key == "torchaudio":
        return f"{companion.name}=={release[0]}.{release[1]}.*"
    return None


# --- recorded builds -----------------------------------------------------------------------------


def _local(version: str) -> str | None:
    """The local version label (``cu130``, ``cpu``), None without one."""
    return version.partition("+")[2].lower() or None


def recorded_versions(companion: Companion) -> list[tuple[str, str]]:
    """(where, version) pairs the companion records about its own build, read as text.

    Its METADATA version; ``<package>/version.py``'s ``__version__`` (torchvision and torchaudio
    write ``0.28.0+cu130`` there even when the index served a wheel without the tag); and
    xformers' ``<package>/cpp_lib.json`` (``{"version": {"torch": "2.2.1+cu121", "cuda": 1201}}``,
    the torch it was built against, which xformers/_cpp_lib.py prints as "xFormers was built for").
    """
    found = [(f"{companion.dist.meta_dir.name}/METADATA", companion.dist.version)]
    for package in companion.package_dirs():
        try:
            version = read_version_module(package).get("__version__")
        except (OSError, ValueError, SyntaxError):
            version = None
        if version:
            found.append((str(package / "version.py"), version))
    return found


BUILD_RECORD_LIMIT = 1 << 20  # xformers 0.0.33's cpp_lib.json is under 1 KB


def built_for_torch(companion: Companion) -> tuple[Path, str] | None:
    """The torch version a build record names (xformers' cpp_lib.json), None without one."""
    for package in companion.package_dirs():
        record = package / "cpp_lib.json"
        try:
            torch_version = json.loads(read_text(record, BUILD_RECORD_LIMIT, "cpp_lib.json"))["version"]["torch"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested past Python's limit
            continue
        if isinstance(torch_version, str):
            return record, torch_version
    return None


def torch_uses_cxx11_abi(torch: TorchSide) -> bool | None:
    """Whether torch was built with ``_GLIBCXX_USE_CXX11_ABI=1``: libc10's exports name ``std::__cxx11``."""
    c10 = next((p for p in torch.libraries if p.name == "libc10.so"), None)
    if c10 is None:
        return None
    defined, _ = dynamic_symbols(c10, r"_Z\w*?__cxx11")
    return bool(defined)


# --- the import, in the torch child ----------------------------------------------------------------


def import_names(companion: Companion) -> tuple[str, ...]:
    """The modules to import for a companion: the top-level packages that hold its extensions."""
    return tuple(folder.name for folder in companion.package_dirs())
