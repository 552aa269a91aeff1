"""Other CUDA frameworks beside torch: onnxruntime-gpu, CuPy, JAX's plugins, TensorFlow, anything whose ELF files need CUDA.

They share the nvidia-* wheels with torch but declare and find them differently.  Read from
onnxruntime-gpu 1.31.1 (a CUDA 13.0 build, ``onnxruntime/capi/build_and_package_info.py``):

- its METADATA declares the CUDA wheels only under extras (``[cuda]``: nvidia-cuda-nvrtc,
  nvidia-cuda-runtime, nvidia-cufft, nvidia-curand, each ``~=``; ``[cudnn]``: nvidia-cudnn-cu13),
  and nvidia-cublas under none, although its CUDA provider needs libcublas.so.13;
- ``capi/libonnxruntime_providers_cuda.so`` has no DT_RPATH and no DT_RUNPATH: ld.so finds its
  CUDA libraries only where the process has them already (``import torch`` first maps torch's
  wheels by soname) or in the system's folders;
- ``onnxruntime/__init__.py`` ``preload_dlls()`` and ``_get_nvidia_dll_paths()``: on Linux with
  CUDA 13 it ``ctypes.CDLL``s ``site-packages/nvidia/cu13/lib/`` libcublasLt.so.13, libcublas.so.13,
  libnvrtc.so.13, libcurand.so.10, libcufft.so.12, libcudart.so.13 and ``nvidia/cudnn/lib/libcudnn.so.9``
  (``nvidia/<component>/lib`` for CUDA 12), then retries the bare names through the default search;
- the execution providers are ``dlopen``ed by name from ``onnxruntime_pybind11_state*.so``
  (its strings: ``libonnxruntime_providers_cuda.so``, ``..._tensorrt.so``, ``..._nv_tensorrt_rtx.so``
  and others), each when a session asks for it; the TensorRT provider needs TensorRT
  (libnvinfer.so.10), which no extra declares, and ``InferenceSession`` falls back to CUDA then CPU
  (``capi/onnxruntime_inference_collection.py``, ``_fallback_providers``): it is optional.

This module answers four questions, each as small as it can be:

- :func:`elf_roots`: which distributions are roots because their ELF files need CUDA libraries,
  though they require no nvidia-* distribution (a companion of torch is not one: it runs in torch's
  process, and :mod:`pytest_cudadeps.engine.companions` checks it);
- :func:`extra_demands`: the requirements behind a root's own extras, so that a library its
  ``[cuda]`` extra declares is declared, and the fix installs the extra;
- :func:`framework_findings`: the linkage items of a library needed only by an optional plugin
  become notes, and those of a library needed by an object without search path say how it is
  found (preloaded by ``import torch`` or ``onnxruntime.preload_dlls()``), or that nothing loads it;
- :func:`shared_findings`: conflicts between roots (different majors of one library, pins no
  installed version satisfies).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from pytest_cudadeps.core.safe_io import is_regular
from pytest_cudadeps.engine.companions import TORCH_LIBRARY
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.elf import needed_names
from pytest_cudadeps.engine.linkage import Linkage, is_cuda_soname
from pytest_cudadeps.engine.owners import is_shared_object_name
from pytest_cudadeps.engine.requirements import NEVER_ROOTS, Closures, Demand, known_extras, requirements_of
from pytest_cudadeps.tables.wheels import CUDA_PREFIXES

if TYPE_CHECKING:
    pass
from pytest_cudadeps.tables.frameworks import AFTER_TORCH, FRAMEWORKS, AfterTorch, Framework, FrameworkFile
from pytest_cudadeps.tables.plugins import OPTIONAL_PLUGINS, Plugin

# --- roots found from ELF files --------------------------------------------------------------------


def _needs_cuda(dist: Distribution) -> tuple[bool, bool]:
    """(an own shared object needs a CUDA library, one links torch's libraries), from DT_NEEDED alone."""
    cuda = torch = False
    for entry in dist.record_entries(".so"):
        path = Path(os.path.normpath(dist.location / entry.path))
        if not is_shared_object_name(path.name) or not is_regular(path):
            continue
        names = needed_names(path)
        cuda = cuda or any(is_cuda_soname(n) for n in names)
        torch = torch or any(TORCH_LIBRARY.match(n) for n in names)
    return cuda, torch


def elf_roots(env: Environment, roots: Sequence[Distribution], closures: Closures) -> list[Distribution]:
    """Distributions whose own ELF files need a CUDA library and that no root covers yet.

    Left out: the roots, what a root's requirements reach (their files are checked from that root,
    and triton's by :mod:`pytest_cudadeps.engine.triton`), the nvidia-*/cuda-* wheels (the libraries
    themselves) and companions of torch: torchvision's ``_C.so`` needs libcudart.so.13 through the
    RPATH of the machine it was built on, and finds it only because ``import torchvision`` imports
    torch first; it is torch's process that must provide it, which torch's own items check.
    """
    covered = {d.key for d in roots} | {dem.key for d in roots for dem in closures.of(d).demands}
    found = []
    for key in sorted(env.by_key):
        dist = env.get(key)
        if dist is None or key in covered or key in NEVER_ROOTS or key.startswith(CUDA_PREFIXES) or \
                any(after.key == key for after in AFTER_TORCH):
            continue
        cuda, torch = _needs_cuda(dist)
        if cuda and not torch:
            found.append(dist)
    return found


# --- the requirements behind a root's extras -------------------------------------------------------


def extra_demands(dist: Distribution) -> dict[str, list[Demand]]:
    """Per distribution key, the requirements of ``dist`` that only one of its extras brings (first level)."""
    found: dict[str, list[Demand]] = {}
    for extra in sorted(known_extras(dist)):
        chain = (f"{dist.name}[{extra}] {dist.version}",)
        for req in requirements_of(dist, extra):  # true with the extra, false without it
            found.setdefault(canonicalize_name(req.name), []).append(Demand(chain, req))
    return found
_CUDART = re.compile(r"libcudart\.so\.(\d+)$")


def cuda_of_linkage(linkage: Linkage | None) -> str | None:
    """The CUDA major a root's binaries were built for, from the libcudart they need (``13``), None without one."""
    majors = sorted({m.group(1) for lib in (linkage.libraries if linkage else ()) if (m := _CUDART.match(lib.soname))})
    return majors[-1] if majors else None


def optional_plugin(dist: Distribution, path: Path) -> Plugin | None:
    for plugin in OPTIONAL_PLUGINS:
        if path.name == plugin.file and (dist.location / plugin.package) in path.parents:
            return plugin
    return None


# --- frameworks as roots ----------------------------------------------------------------------------


def installed_frameworks(env: Environment) -> dict[str, Framework]:
    """The frameworks of :data:`~pytest_cudadeps.tables.frameworks.FRAMEWORKS` whose build is installed, by root key:
    the root's distribution and its marker (``jax`` and ``jax-cuda13-pjrt``), the marker at the build's version."""
    found = {}
    for framework in FRAMEWORKS:
        dist, marker = env.get(framework.key), env.get(framework.marker)
        if dist is not None and marker is not None and marker.version.startswith(framework.marker_version):
            found[framework.key] = framework
    return found


def framework_extras(dist: Distribution, framework: Framework | None) -> tuple[str, ...]:
    """The root's extras that declare its CUDA wheels, those its METADATA provides (``cuda13`` of jax)."""
    if framework is None:
        return ()
    provided = known_extras(dist)
    return tuple(e for e in (canonicalize_name(x) for x in framework.extra.split(",")) if e in provided)


def is_cuda_wheel(key: str) -> bool:
    """An nvidia-*/cuda-* library distribution or the cuda-toolkit meta-package: never a root beside a framework."""
    return key.startswith(CUDA_PREFIXES)


# --- files a framework finds itself ------------------------------------------------------------------


def find_framework_file(env: Environment, file: FrameworkFile, environ: Mapping[str, str],
                        system: Path = Path("/usr/local/cuda")) -> tuple[Path | None, str, list[str]]:
    """(the file the framework takes, the step that found it, every place looked at), in its order (see
    :class:`~pytest_cudadeps.tables.frameworks.FrameworkFile`); (None, "", places) when none has it."""
    steps: list[tuple[str, Path]] = []
    if environ.get("CONDA_PREFIX"):
        steps.append(("CONDA_PREFIX", Path(environ["CONDA_PREFIX"]) / file.rel / file.name))
    wheel = next(((key, start, folder) for key, start, folder in file.wheels
                  if (dist := env.get(key)) is not None and dist.version.startswith(start)), None)
    if wheel is not None:
        dist = env.get(wheel[0])
        assert dist is not None
        steps.append((f"the {dist} wheel", dist.location / wheel[2] / file.name))
    home = environ.get("CUDA_HOME") or environ.get("CUDA_PATH")
    if home:
        steps.append(("CUDA_HOME" if environ.get("CUDA_HOME") else "CUDA_PATH", Path(home) / file.rel / file.name))
    steps.append((f"the system's {system}", system / file.rel / file.name))
    for how, path in steps:
        if is_regular(path):
            return path, how, [str(p) for _, p in steps]
    return None, "", [str(p) for _, p in steps]


# --- packages that load their binary after torch ----------------------------------------------------
_VARIANT = re.compile(r"(\d+)\.so$")


def _shipped(template: Path, major: str, digits: int) -> list[int]:
    """The versions of the binary shipped in its folder that belong to ``major`` (130 and 132 for 13), sorted."""
    prefix = template.name.split("{")[0]
    folder = template.parent
    found = [_VARIANT.search(p.name) for p in (folder.iterdir() if folder.is_dir() else ()) if p.name.startswith(prefix)]
    return sorted(int(m.group(1)) for m in found if m and m.group(1).startswith(major) and len(m.group(1)) == digits)


def picked_binary(dist: Distribution, after: AfterTorch, torch_cuda: str, override: str | None) -> tuple[Path, str]:
    """The binary ``after`` loads beside a torch built for ``torch_cuda`` ("13.0"), and how it was picked.

    ``override`` (``BNB_CUDA_VERSION``) names the version outright, with no fallback.  Otherwise the exact version,
    else the highest shipped one below it of the same major, else the lowest above it of the same major, else the
    exact path (missing), as bitsandbytes 0.50.2's ``cextension.py`` does.
    """
    wanted = torch_cuda.replace(".", "")
    path = dist.location / after.binary.format(v=override or wanted)
    if override:
        return path, f"{after.override}={override}"
    how = f"torch.version.cuda = {torch_cuda!r}"
    if is_regular(path):
        return path, how
    shipped = _shipped(dist.location / after.binary, torch_cuda.split(".")[0], len(wanted))
    lower = [v for v in shipped if v < int(wanted)]
    higher = [v for v in shipped if v > int(wanted)]
    if lower or higher:
        chosen = lower[-1] if lower else higher[0]
        return dist.location / after.binary.format(v=chosen), f"{how}, nearest of the same major"
    return path, how
