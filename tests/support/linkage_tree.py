"""torch 2.14.1 and its CUDA 13 wheels with small gcc-built libraries, laid out like the real wheels.

The tree has the real METADATA (tests/support/sitebuilder.py) plus ``torch/lib/libtorch_global_deps.so`` and
``torch/_C.so`` with DT_RPATH ``$ORIGIN/../../nvidia/cu13/lib``, and the CUDA libraries in ``nvidia/cu13/lib``, each
listed in the RECORD of the distribution that owns it.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from tests.support import sitebuilder as sb
from tests.support.build import build_so

CU13_LIB = "nvidia/cu13/lib"
TORCH_RPATH = "$ORIGIN/../../nvidia/cudnn/lib:$ORIGIN/../../nvidia/cu13/lib:$ORIGIN"
RUNTIME = next(d for d in sb.CU13 if d.key == "nvidia-cuda-runtime")


@dataclass(frozen=True)
class Libs:
    """gcc-built libraries, compiled once per module and copied into each tree."""

    cudart: Path  # libcudart.so.13 defining version `libcudart.so.13'
    cudart_unversioned: Path  # the same soname with no version definitions
    cublas: Path
    cusparse: Path  # needs libnvJitLink.so.13 and __nvJitLinkComplete_13_1, DT_RUNPATH $ORIGIN
    nvjitlink: Path  # defines __nvJitLinkComplete_13_0 and _13_1
    nvjitlink_old: Path  # defines only __nvJitLinkComplete_13_0
    global_deps: Path  # needs libcudart.so.13 (versioned), libcublas.so.13, libcusparse.so.12; DT_RPATH
    c_ext: Path  # torch/_C.so: needs libcudart.so.13; DT_RPATH $ORIGIN/../nvidia/cu13/lib


def versioned(gcc: str, folder: Path, soname: str, source: str, symbols: Iterable[str], *flags: str) -> Path:
    """``folder/soname`` with one version node named after the soname, as the CUDA libraries have, holding ``symbols``."""
    script = folder / f"{soname}.map"
    script.write_text(f"{soname} {{ global: {'; '.join(symbols)}; local: *; }};\n")
    return build_so(gcc, folder / soname, source, f"-Wl,-soname,{soname}", f"-Wl,--version-script,{script}", *flags)


def build_libs(gcc: str, root: Path) -> Libs:
    """The libraries of :class:`Libs`, built under ``root`` (a module's fixture builds them once)."""
    link, old = root / "link", root / "old"  # link: what the users link against
    link.mkdir()
    old.mkdir()
    cudart = versioned(gcc, link, "libcudart.so.13", "int cudaGetDeviceCount(int *n) { *n = 0; return 35; }\n",
                        ["cudaGetDeviceCount"])
    unversioned = build_so(gcc, root / "unversioned" / "libcudart.so.13",
                           "int cudaGetDeviceCount(int *n) { *n = 0; return 35; }\n", "-Wl,-soname,libcudart.so.13")
    cublas = versioned(gcc, link, "libcublas.so.13", "int cublasCreate_v2(void **h) { return 0; }\n",
                        ["cublasCreate_v2"])
    jit = "int __nvJitLinkComplete_13_0(void) { return 0; }\nint __nvJitLinkComplete_13_1(void) { return 0; }\n"
    nvjitlink = versioned(gcc, link, "libnvJitLink.so.13", jit, ["__nvJitLinkComplete_13_0", "__nvJitLinkComplete_13_1"])
    nvjitlink_old = versioned(gcc, old, "libnvJitLink.so.13", jit.splitlines()[0] + "\n", ["__nvJitLinkComplete_13_0"])
    cusparse = versioned(gcc, link, "libcusparse.so.12",
                          "int __nvJitLinkComplete_13_1(void);\nint cusparseCreate(void) { return __nvJitLinkComplete_13_1(); }\n",
                          ["cusparseCreate"], f"-L{link}", "-l:libnvJitLink.so.13", "-Wl,--enable-new-dtags,-rpath,$ORIGIN")
    uses = "int cudaGetDeviceCount(int *n);\nint cublasCreate_v2(void **h);\nint cusparseCreate(void);\n"
    global_deps = build_so(
        gcc, root / "torch" / "lib" / "libtorch_global_deps.so",
        uses + "int deps(void) { int n; return cudaGetDeviceCount(&n) + cublasCreate_v2(0) + cusparseCreate(); }\n",
        "-Wl,--no-as-needed", f"-L{link}", "-l:libcudart.so.13", "-l:libcublas.so.13", "-l:libcusparse.so.12",
        f"-Wl,--disable-new-dtags,-rpath,{TORCH_RPATH}")
    c_ext = build_so(gcc, root / "torch" / "_C.so", uses + "int c(void) { int n; return cudaGetDeviceCount(&n); }\n",
                     f"-L{link}", "-l:libcudart.so.13", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../nvidia/cu13/lib")
    return Libs(cudart, unversioned, cublas, cusparse, nvjitlink, nvjitlink_old, global_deps, c_ext)


def record_line(rel: str, data: bytes) -> str:
    """A RECORD line for ``rel`` with these bytes' hash and size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}\n"


def dist_info(site: Path, name: str) -> Path:
    """The one .dist-info folder of ``name`` in ``site``."""
    found = sorted(site.glob(f"{name.replace('-', '_')}-*.dist-info"))
    assert len(found) == 1, (name, found)
    return found[0]


def put(site: Path, rel: str, source: Path, owner: str | None) -> Path:
    """Copy ``source`` to ``site/rel`` and list it in ``owner``'s RECORD (as pip would)."""
    target = site / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    if owner is not None:
        with open(dist_info(site, owner) / "RECORD", "a", encoding="utf-8") as record:
            record.write(record_line(rel, target.read_bytes()))
    return target


def tree(site: Path, libs: Libs, *, omit: Iterable[str] = (), torch_requires: tuple[str, ...] | None = None,
         real_runtime_record: bool = False, **replace_libs: Path) -> Path:
    """torch 2.14.1 and its CUDA 13 wheels with their libraries; ``omit`` leaves wheels (and their files) out."""
    omit = {*omit}
    runtime = RUNTIME if real_runtime_record else replace(RUNTIME, record_file=None)
    torch = (sb.torch_dist("2.14.1", "13.0", metadata_file=sb.DATA / "torch-2.14.1.METADATA")
             if torch_requires is None else sb.torch_dist("2.14.1", "13.0", requires=torch_requires))
    wheels = [runtime if d.key == RUNTIME.key else d for d in sb.CU13 if d.key not in omit]
    sb.build(site, [torch, *sb.COMMON, *wheels])
    chosen = {**libs.__dict__, **replace_libs}
    put(site, "torch/lib/libtorch_global_deps.so", chosen["global_deps"], "torch")
    put(site, "torch/_C.so", chosen["c_ext"], "torch")
    for key, soname, owner in (("cudart", "libcudart.so.13", "nvidia-cuda-runtime"),
                               ("cublas", "libcublas.so.13", "nvidia-cublas"),
                               ("cusparse", "libcusparse.so.12", "nvidia-cusparse"),
                               ("nvjitlink", "libnvJitLink.so.13", "nvidia-nvjitlink")):
        if owner not in omit:
            real_record = real_runtime_record and owner == RUNTIME.key  # it lists libcudart.so.13 already
            put(site, f"{CU13_LIB}/{soname}", chosen[key], None if real_record else owner)
    return site


def trimmed_init(*libraries: tuple[str, str]) -> str:
    """torch 2.14.1's __init__.py with its strict list cut to ``libraries`` (a small tree has only these): the real
    ``_load_global_deps`` and ``_get_cuda_dep_paths``, read as the engine reads the installed file."""
    text = (sb.DATA / "torch-2.14.1-init.py.txt").read_text(encoding="utf-8")
    start = text.index("    cuda_libs: list[tuple[str, str]] = [")
    end = text.index("    ]\n", start)
    return text[:start] + "    cuda_libs: list[tuple[str, str]] = [\n" + "".join(
        f"        ({folder!r}, {pattern!r}),\n" for folder, pattern in libraries) + text[end:]


# the strict list of the tree above: the four libraries it has
TREE_STRICT = (("cublas", "libcublas.so.*[0-9]"), ("cuda_runtime", "libcudart.so.*[0-9]"),
               ("nvjitlink", "libnvJitLink.so.*[0-9]"), ("cusparse", "libcusparse.so.*[0-9]"))
