"""Fake site-packages trees built from the real METADATA files in ``tests/data``.

A tree holds, per distribution, a ``<name>-<version>.dist-info`` folder with
``METADATA`` (the real file when ``tests/data`` has it, otherwise one written from
the Name, Version and Requires-Dist the real wheel declares), ``INSTALLER`` and
``RECORD``; torch also gets ``torch/version.py`` with its ``cuda`` line, the only
file of torch the plugin reads.  Nothing here is ever imported by the plugin.

The scenarios mirror real installs:

- :func:`torch_2_14_1`: torch 2.14.1 (CUDA 13.0) with ``cuda-toolkit`` 13.0.3.0 and
  every wheel its extras and torch's own pins ask for, at the versions pip installs
  (the real venv of the integration tier).
- :func:`torch_cu12`: torch 2.7.1 (x86_64 or aarch64 metadata), 2.6.0 or 2.4.1 (old
  ``name (==X) ; marker`` pins) with its ``nvidia-*-cu12`` wheels.
- :func:`torch_cpu`: torch 2.13.0+cpu, ``cuda = None``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DATA = Path(__file__).parent.parent / "data"


@dataclass(frozen=True)
class Dist:
    """A distribution to write: its metadata text comes from ``metadata_file`` or is generated."""

    name: str
    version: str
    requires: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    metadata_file: Path | None = None
    installer: str = "pip"
    record_file: Path | None = None
    files: Mapping[str, str] = field(default_factory=dict)  # path relative to site-packages -> text

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    def metadata(self) -> str:
        if self.metadata_file is not None:
            return self.metadata_file.read_text(encoding="utf-8")
        return metadata_text(self.name, self.version, self.requires, self.extras)


def metadata_text(name: str, version: str, requires: Iterable[str] = (), extras: Iterable[str] = ()) -> str:
    """A minimal Metadata-Version 2.1 file."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n\n"


def requires_txt(path: Path) -> tuple[str, ...]:
    """The Requires-Dist lines of a ``*.requires.txt`` fixture, one per line."""
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def dist_info_name(name: str, version: str) -> str:
    return f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def write_dist(site: Path, dist: Dist) -> Path:
    """Write one distribution into ``site``; returns its dist-info folder."""
    info = site / dist_info_name(dist.name, dist.version)
    info.mkdir(parents=True)
    written: dict[str, bytes] = {}
    for rel, text in dist.files.items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written[rel] = text.encode()
    for fname, text in (("METADATA", dist.metadata()), ("INSTALLER", f"{dist.installer}\n")):
        (info / fname).write_text(text, encoding="utf-8")
        written[f"{info.name}/{fname}"] = text.encode()
    if dist.record_file is not None:
        record = dist.record_file.read_text(encoding="utf-8").rstrip("\n") + "\n"
    else:
        record = "".join(_record_line(rel, data) + "\n" for rel, data in sorted(written.items()))
        record += f"{info.name}/RECORD,,\n"
    (info / "RECORD").write_text(record, encoding="utf-8")
    return info


def torch_version_py(cuda: str | None, version: str) -> str:
    """``torch/version.py`` as torch writes it (the plugin reads it as text)."""
    cuda_literal = repr(cuda) if cuda is not None else "None"
    return (
        "from typing import Optional\n\n"
        "__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'rocm', 'xpu']\n"
        f"__version__ = {version!r}\n"
        "debug = False\n"
        f"cuda: Optional[str] = {cuda_literal}\n"
        "git_version = '5c4886908584029761b579af026dcfb627c84070'\n"
        "hip: Optional[str] = None\n"
    )


def torch_dist(version: str, cuda: str | None, *, requires: Sequence[str] = (),
               metadata_file: Path | None = None, installer: str = "pip") -> Dist:
    local = "+cu" + cuda.replace(".", "") if cuda and "+" not in version else ""
    return Dist(
        "torch", version, tuple(requires), ("optree", "opt-einsum"), metadata_file, installer,
        files={"torch/__init__.py": "raise ImportError('the plugin must never import torch')\n",
               "torch/version.py": torch_version_py(cuda, version + local)},
    )


# The pure-Python distributions torch needs, at the versions of the integration venv.
COMMON: tuple[Dist, ...] = (
    Dist("filelock", "4.2.11"),
    Dist("fsspec", "2026.9.0"),
    Dist("jinja2", "3.1.6", ("MarkupSafe>=2.0",), ("i18n",)),
    Dist("MarkupSafe", "3.0.4"),
    Dist("mpmath", "1.3.0"),
    Dist("networkx", "3.6.1"),
    Dist("setuptools", "84.2.1"),
    Dist("sympy", "1.14.0", ("mpmath<1.4,>=1.1.0",)),
    Dist("typing_extensions", "4.16.0"),
    Dist("importlib-metadata", "8.7.0", ("zipp>=3.20",)),  # triton asks for it below Python 3.10
    Dist("zipp", "3.23.0"),
)

# torch 2.14.1 (cu130): the wheels pip installs, with the Requires-Dist of the real wheels.
CU13: tuple[Dist, ...] = (
    Dist("cuda-toolkit", "13.0.3.0", metadata_file=DATA / "cuda_toolkit-13.0.3.0.METADATA"),
    Dist("cuda-bindings", "13.5.0", ("cuda-pathfinder>=1.4.2",), ("all",)),
    Dist("cuda-pathfinder", "1.9.0"),
    Dist("nvidia-cublas", "13.1.1.3", metadata_file=DATA / "nvidia_cublas-13.1.1.3.METADATA"),
    Dist("nvidia-cuda-cupti", "13.0.85"),
    Dist("nvidia-cuda-nvrtc", "13.0.88"),
    Dist("nvidia-cuda-runtime", "13.0.96", record_file=DATA / "nvidia_cuda_runtime-13.0.96.RECORD"),
    Dist("nvidia-cudnn-cu13", "9.24.0.43", metadata_file=DATA / "nvidia_cudnn_cu13-9.24.0.43.METADATA"),
    Dist("nvidia-cufft", "12.0.0.61", ("nvidia-nvjitlink",)),
    Dist("nvidia-cufile", "1.15.1.6"),
    Dist("nvidia-curand", "10.4.0.35"),
    Dist("nvidia-cusolver", "12.0.4.66", ("nvidia-cublas", "nvidia-nvjitlink", "nvidia-cusparse")),
    Dist("nvidia-cusparse", "12.6.3.3", ("nvidia-nvjitlink",)),
    Dist("nvidia-cusparselt-cu13", "0.8.1"),
    Dist("nvidia-nccl-cu13", "2.30.7"),
    Dist("nvidia-nvjitlink", "13.5.37"),  # satisfies cuda-toolkit's >=13.0.88,<14
    Dist("nvidia-nvshmem-cu13", "3.4.5"),
    Dist("nvidia-nvtx", "13.0.85"),
    Dist("triton", "3.8.0", ('importlib-metadata; python_version < "3.10"',)),
)

# What torch 2.14.1 reaches through cuda-toolkit's extras (and nothing else does).
CU13_THROUGH_EXTRAS = (
    "nvidia-cublas", "nvidia-cuda-cupti", "nvidia-cuda-nvrtc", "nvidia-cuda-runtime", "nvidia-cufft",
    "nvidia-cufile", "nvidia-curand", "nvidia-cusolver", "nvidia-cusparse", "nvidia-nvjitlink", "nvidia-nvtx",
)

# Requirements of the cu12 wheels themselves (the real wheels declare these, unpinned).
_CU12_REQUIRES: dict[str, tuple[str, ...]] = {
    "nvidia-cudnn-cu12": ("nvidia-cublas-cu12",),
    "nvidia-cufft-cu12": ("nvidia-nvjitlink-cu12",),
    "nvidia-cusolver-cu12": ("nvidia-cublas-cu12", "nvidia-nvjitlink-cu12", "nvidia-cusparse-cu12"),
    "nvidia-cusparse-cu12": ("nvidia-nvjitlink-cu12",),
}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\s*\(?\s*==\s*(?P<version>[^);\s]+)")

CU12_TORCH = {  # torch version, metadata fixture, the CUDA it was built for
    "2.7.1-x86_64": ("2.7.1", DATA / "torch-2.7.1-x86_64.requires.txt", "12.6"),
    "2.7.1-aarch64": ("2.7.1", DATA / "torch-2.7.1-aarch64.requires.txt", "12.6"),
    "2.6.0-x86_64": ("2.6.0", DATA / "torch-2.6.0-x86_64.requires.txt", "12.4"),
    "2.4.1-x86_64": ("2.4.1", DATA / "torch-2.4.1-x86_64.requires.txt", "12.1"),
}


def pinned(requires: Iterable[str]) -> dict[str, str]:
    """``name -> version`` of every ``==`` pin (new ``name==X`` and old ``name (==X)`` forms)."""
    pins: dict[str, str] = {}
    for line in requires:
        match = _PIN.match(line)
        if match:
            pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def cu12_dists(requires: Iterable[str]) -> list[Dist]:
    """The nvidia-*-cu12 wheels (and triton) at the versions torch pins, plus nvjitlink when others need it."""
    pins = pinned(requires)
    pins.setdefault("nvidia-nvjitlink-cu12", "12.6.85")
    dists = [Dist(name, version, _CU12_REQUIRES.get(name, ())) for name, version in sorted(pins.items())
             if name.startswith("nvidia-")]
    if "triton" in pins:
        dists.append(Dist("triton", pins["triton"], ("filelock",)))
    return dists


def build(site: Path, dists: Iterable[Dist]) -> Path:
    """Write every distribution into ``site`` (created); returns ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        write_dist(site, dist)
    return site


def _edit(dists: Iterable[Dist], omit: Iterable[str], versions: Mapping[str, str], installer: str) -> list[Dist]:
    skip = {canonicalize_name(n) for n in omit}
    new_versions: dict[str, str] = {canonicalize_name(k): v for k, v in versions.items()}
    out = []
    for dist in dists:
        if dist.key in skip:
            continue
        if dist.key in new_versions:
            dist = replace(dist, version=new_versions[dist.key], metadata_file=None)
        out.append(replace(dist, installer=installer))
    return out


def torch_2_14_1(site: Path, *, omit: Iterable[str] = (), versions: Mapping[str, str] | None = None,
                 installer: str = "pip", extra: Iterable[Dist] = ()) -> Path:
    """torch 2.14.1 + cuda-toolkit 13.0.3.0 + every CUDA 13 wheel; ``omit`` leaves some out."""
    torch = torch_dist("2.14.1", "13.0", metadata_file=DATA / "torch-2.14.1.METADATA")
    return build(site, [*_edit((torch, *COMMON, *CU13), omit, versions or {}, installer), *extra])


def torch_cu12(site: Path, which: str = "2.7.1-x86_64", *, omit: Iterable[str] = (),
               versions: Mapping[str, str] | None = None, installer: str = "pip") -> Path:
    """An older CUDA 12 torch (``which`` is a key of :data:`CU12_TORCH`) with its pinned cu12 wheels."""
    version, fixture, cuda = CU12_TORCH[which]
    requires = requires_txt(fixture)
    torch = torch_dist(version, cuda, requires=requires)
    common_pins = {k: v for k, v in pinned(requires).items() if k in {d.key for d in COMMON}}  # sympy==1.13.1
    return build(site, _edit((torch, *COMMON, *cu12_dists(requires)), omit, {**common_pins, **(versions or {})},
                             installer))


def torch_cpu(site: Path, *, installer: str = "pip") -> Path:
    """torch 2.13.0+cpu: ``cuda = None``, no nvidia wheels."""
    torch = torch_dist("2.13.0+cpu", None, metadata_file=DATA / "torch-2.13.0+cpu.METADATA")
    return build(site, _edit((torch, *COMMON), (), {}, installer))


def requirement_names(requires: Iterable[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requires}


def add_to_record(site: Path, dist_name: str, files: Iterable[Path]) -> None:
    info = next(site.glob(f"{dist_name}-*.dist-info"))
    with open(info / "RECORD", "a", encoding="utf-8") as record:
        for path in files:
            data = path.read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.write(f"{path.relative_to(site)},sha256={digest},{len(data)}\n")
