"""What ``import torch`` loads before its own libraries, read from the installed ``torch/__init__.py``.

torch does not leave its CUDA libraries to the loader alone.  ``_load_global_deps()`` dlopens
``torch/lib/libtorch_global_deps.so`` with ``RTLD_GLOBAL`` and then, when ``/proc/self/maps`` holds a
given text, *preloads* CUDA libraries by absolute path, found by globbing ``sys.path`` entries, before
``torch._C`` loads ``libtorch_cpu.so``: a preloaded wheel's copy then wins every later DT_NEEDED lookup
of its soname, over ``LD_LIBRARY_PATH`` and the ld.so cache (pytorch/pytorch#138460, #145580).  When
``libtorch_global_deps.so`` itself fails to load, the same list is preloaded strictly and the first one
missing raises ``ValueError: <glob> not found in the system path``.

Read from the installed file with :mod:`ast` (never imported), as these two releases write it:

- torch 2.14.1: the trigger is ``"libcudart.so" in _maps`` (any copy, a system one too); the preload is
  ``_preload_cuda_deps(required=False)``: 16 libraries (``cuda_libs``, cuBLASLt first), each looked for in
  ``P/nvidia/<folder>/lib``, then ``P/nvidia/cu<major>/lib``, then ``P/<folder>/lib`` of each ``sys.path``
  entry P in turn; the first one whose own dependencies fail ends the preload (``except Exception: pass``).
- torch 2.7.1: the trigger is ``"nvidia/cuda_runtime/lib/libcudart.so" in _maps`` (the wheel's copy only);
  the preload is nvrtc then nvJitLink (two ``_preload_cuda_deps(folder, glob)`` calls); the strict list is
  the ``cuda_libs`` dict of the ``except OSError`` branch; no ``cu<major>`` folder.

A file this reader does not understand gives :data:`NO_PRELOAD` with the reason, and the model goes on
without a preload (as the loader alone would).
"""

from __future__ import annotations

import ast
import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.core.safe_io import read_regular

INIT_LIMIT = 4 << 20  # torch 2.14.1's __init__.py is 110 KB


@dataclass(frozen=True)
class Preload:
    """What torch's ``_load_global_deps()`` preloads, and when.

    ``trigger``: the text of ``/proc/self/maps`` that turns the preload on once libtorch_global_deps is
    mapped; ``libraries``: (folder under ``nvidia/``, glob) in order; ``strict``: the list preloaded when
    libtorch_global_deps fails to load; ``cu_folder``: ``nvidia/cu<major>/lib`` is searched too.
    ``source`` says where it was read, or why nothing was.
    """

    trigger: str
    libraries: tuple[tuple[str, str], ...]
    strict: tuple[tuple[str, str], ...]
    cu_folder: bool
    source: str

    def candidates(self, entries: Iterable[Path], folder: str, pattern: str, cuda_major: str | None) -> Iterator[Path]:
        """The files torch's ``_get_cuda_dep_paths`` finds for one library, the first ``sys.path`` entry first."""
        for entry in entries:
            found = glob.glob(os.path.join(entry, "nvidia", folder, "lib", pattern))
            if self.cu_folder and cuda_major:
                found += glob.glob(os.path.join(entry, "nvidia", f"cu{cuda_major}", "lib", pattern))
            found += glob.glob(os.path.join(entry, folder, "lib", pattern))
            if found:  # torch takes the first hit of the first entry that has any, unsorted, as glob gives it
                yield Path(found[0])
                return

    def paths(self, entries: Sequence[Path], cuda_major: str | None, *, strict: bool = False) -> list[Path | str]:
        """Each library's file, in order; a library found nowhere is its glob (the strict preload stops there)."""
        return [next(self.candidates(entries, folder, pattern, cuda_major), pattern)
                for folder, pattern in (self.strict if strict else self.libraries)]


NO_PRELOAD = Preload("", (), (), False, "")


def read_preload(package: Path) -> Preload:
    """torch's preload, read from ``package/__init__.py`` (:data:`NO_PRELOAD` with the reason when it cannot be)."""
    init = package / "__init__.py"
    try:
        tree = ast.parse(read_regular(init, INIT_LIMIT, "torch's __init__.py").decode("utf-8", "replace"))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return _none(f"{init} cannot be read: {exc}")
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    loader = functions.get("_load_global_deps")
    if loader is None:
        return _none(f"{init} has no _load_global_deps()")
    strict = _cuda_libs(tree)
    trigger = _trigger(loader)
    calls = list(_preload_calls(loader))
    if not trigger or not calls:
        return _none(f"{init}: _load_global_deps() preloads nothing this reader knows")
    libraries = strict if calls == [()] else tuple(call for call in calls if call)
    finder = functions.get("_get_cuda_dep_paths")
    cu_folder = finder is not None and any(isinstance(node, ast.Name) and node.id == "cuda_version"
                                           for node in ast.walk(finder))
    return Preload(trigger, libraries, strict, cu_folder, f"{init}, _load_global_deps()")


def _none(reason: str) -> Preload:
    return Preload("", (), (), False, reason)


def _text(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _pairs(node: ast.expr) -> tuple[tuple[str, str], ...]:
    """``[("cublas", "libcublas.so.*[0-9]"), ...]`` or ``{"cublas": "libcublas.so.*[0-9]", ...}`` as pairs."""
    if isinstance(node, ast.List):
        items = [item.elts for item in node.elts if isinstance(item, ast.Tuple) and len(item.elts) == 2]
        texts = [(_text(first), _text(second)) for first, second in items]
    elif isinstance(node, ast.Dict):
        texts = [(_text(key), _text(value)) for key, value in zip(node.keys, node.values)]
    else:
        return ()
    return tuple((folder, pattern) for folder, pattern in texts if folder is not None and pattern is not None)


def _assignment(node: ast.AST) -> tuple[ast.expr, ast.expr] | None:
    """(target, value) of ``x = v`` and ``x: T = v``."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        return node.targets[0], node.value
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return node.target, node.value
    return None


def _cuda_libs(tree: ast.Module) -> tuple[tuple[str, str], ...]:
    """The first ``cuda_libs = [...]`` or ``{...}`` of the module, plus the ``cuda_libs["cufile"] = ...`` added later."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        assigned = _assignment(node)
        if assigned is None:
            continue
        target, value = assigned
        if isinstance(target, ast.Name) and target.id == "cuda_libs" and not found:
            found = list(_pairs(value))
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id == "cuda_libs":
            key, pattern = _text(target.slice), _text(value)
            if key is not None and pattern is not None:
                found.append((key, pattern))
    return tuple(found)


def _trigger(loader: ast.FunctionDef) -> str:
    """The text ``X`` of ``if X not in _maps: return`` (or ``X in _maps``)."""
    for node in ast.walk(loader):
        if (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn))
                and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
                and isinstance(node.comparators[0], ast.Name) and node.comparators[0].id == "_maps"):
            return node.left.value
    return ""


def _preload_calls(loader: ast.FunctionDef) -> Iterator[tuple[str, str] | tuple[()]]:
    """The ``_preload_cuda_deps(...)`` calls of the success branch (the ``try`` body that reads /proc/self/maps):
    ``(folder, glob)`` for a call with both, ``()`` for one that preloads the whole list."""
    for node in ast.walk(loader):
        if not (isinstance(node, ast.Try) and any(isinstance(h.type, ast.Name) and h.type.id == "OSError"
                                                  for h in node.handlers)):
            continue
        for statement in node.body:
            for call in ast.walk(statement):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                        and call.func.id == "_preload_cuda_deps"):
                    continue
                args = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                yield (args[0], args[1]) if len(args) == 2 else ()
