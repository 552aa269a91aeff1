"""Which CUDA a root was built for, read from its files, and whether the installed wheels agree.

torch records its build in ``torch/version.py`` (``cuda = '13.0'``, ``None`` for a CPU
build).  The nvidia wheels record their CUDA major in the name (``nvidia-nccl-cu12``)
or, for the toolkit wheels that track the CUDA version itself, in the version
(``nvidia-cuda-runtime 13.0.96``).  Mixing majors makes wheels overwrite each other's
files (``nvidia/nccl/lib/libnccl.so.2``) and the loader pick the wrong one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.engine.distributions import Distribution, Environment, read_version_module

_SUFFIX = re.compile(r"-cu(\d+)$")
_MAJOR_FOLDER = re.compile(r"^nvidia/cu(\d+)/")  # CUDA 13's unsuffixed wheels share nvidia/cu13/
# Distributions whose version is the CUDA toolkit version they belong to.
_VERSIONED_LIKE_CUDA = ("nvidia-cuda-runtime", "nvidia-cuda-nvrtc", "nvidia-cuda-cupti", "cuda-toolkit")


@dataclass(frozen=True)
class Build:
    """What a root says about its own build."""

    dist: Distribution
    version_file: Path
    cuda: str | None  # "13.0", or None for a CPU build

    @property
    def cuda_major(self) -> int | None:
        return int(self.cuda.split(".")[0]) if self.cuda else None


def read_build(env: Environment, dist: Distribution) -> Build | str:
    """torch's build from ``torch/version.py``; a string says why it could not be read."""
    package = env.package_dir(dist, dist.key.replace("-", "_"))
    if package is None:
        return f"{dist} has no package folder {dist.location / dist.key}"
    version_file = package / "version.py"
    try:
        values = read_version_module(package)
    except FileNotFoundError:
        return f"{version_file} is missing"
    except (OSError, ValueError, SyntaxError) as exc:
        return f"{version_file} cannot be read: {exc}"
    if "cuda" not in values:
        return f"{version_file} has no `cuda = ...` line"
    cuda = values["cuda"]
    if cuda is not None and not re.fullmatch(r"\d+\.\d+", cuda):
        return f"{version_file} has cuda = {cuda!r}, not a CUDA version such as '13.0'"
    return Build(dist, version_file, cuda)


def cuda_major_of(dist: Distribution) -> int | None:
    """The CUDA major a wheel is for, when its name, version or folder (``nvidia/cu13/``) says so."""
    match = _SUFFIX.search(dist.key)
    if match:
        return int(match.group(1))
    if dist.key in _VERSIONED_LIKE_CUDA:
        try:
            return int(dist.version.split(".")[0])
        except ValueError:
            return None
    if dist.key.startswith("nvidia-"):  # nvidia-cusparse 12.9.4.2 is CUDA 13's: its files are in nvidia/cu13/
        folders = (_MAJOR_FOLDER.match(entry.path) for entry in dist.record_entries("nvidia/cu"))
        return next((int(m.group(1)) for m in folders if m), None)
    return None
