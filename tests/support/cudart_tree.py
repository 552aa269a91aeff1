"""A small tree for the security[...] items: torch 2.14.1 whose ``torch/lib/libtorch_cuda.so`` (gcc-built) needs
``libcudart.so.13`` through an -rpath of the test's choice, ``$ORIGIN/../../nvidia/cu13/lib`` by default, where
nvidia-cuda-runtime's copy lies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.support import sitebuilder as sb
from tests.support.build import build_so

CUDART = "nvidia/cu13/lib/libcudart.so.13"
# the four security[...] items every run has, in their order
ITEMS = ["security[ld-library-path]", "security[ld-preload]", "security[rpath]", "security[writable-folders]"]
ORIGIN_RUNPATH = "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../../nvidia/cu13/lib"


def tree(root: Path, gcc: str, *link: str, listed: bool = True) -> Path:
    """site-packages with torch and nvidia-cuda-runtime; libtorch_cuda.so linked with ``link`` (its -rpath),
    listed in torch's RECORD (as its wheel ships it) unless ``listed`` is False."""
    site = root / "site"
    torch = sb.torch_dist("2.14.1", "13.0", requires=("nvidia-cuda-runtime",))
    if listed:
        torch = replace(torch, files={**torch.files, "torch/lib/libtorch_cuda.so": ""})  # in its RECORD, built below
    sb.build(site, [torch, sb.Dist("nvidia-cuda-runtime", "13.0.96", files={CUDART: ""})])
    cudart = build_so(gcc, site / CUDART, "int cudart(void) { return 1; }\n", "-Wl,-soname,libcudart.so.13")
    build_so(gcc, site / "torch" / "lib" / "libtorch_cuda.so", "int cudart(void);\nint f(void) { return cudart(); }\n",
             "-Wl,--no-as-needed", f"-L{cudart.parent}", "-l:libcudart.so.13", *(link or (ORIGIN_RUNPATH,)))
    return site
