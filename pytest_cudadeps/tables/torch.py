"""How torch loads its CUDA build, read from its ``__init__.py`` (torch 2.14.1): the libraries, in order, and how."""

from __future__ import annotations

# How torch/__init__.py loads its CUDA build: (item subject, file under torch/lib, RTLD_GLOBAL).
TORCH_LOAD_ORDER = (
    ("torch-global-deps", "libtorch_global_deps.so", True),
    ("torch-cuda", "libtorch_cuda.so", False),
)
