"""The load probe: do the libraries really load, and from the file the static check predicted?

In a child process the root's own libraries are loaded first, as the root loads them
(torch: ``torch/lib/libtorch_global_deps.so`` with ``RTLD_GLOBAL``, then
``torch/lib/libtorch_cuda.so``, which pulls in the CUDA libraries through its RPATH),
then each CUDA library the linkage check resolved.  A library already mapped by then
is reported where it was mapped from; any other one is opened by its predicted path
(or by soname when nothing was predicted).  When the child crashes or hangs, the
library in progress gets the blame and a new child goes on with the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .children import run_steps
from .driver import INSTALL_DRIVER
from .findings import Finding, failed, passed, unavailable
from .installers import reinstall_command
from .providers import DRIVER_SONAMES  # missing one means "no driver", not "broken wheel"

CHECK = "load"
# How torch/__init__.py loads its CUDA build: (item subject, file under torch/lib, RTLD_GLOBAL).
TORCH_LOAD_ORDER = (
    ("torch-global-deps", "libtorch_global_deps.so", True),
    ("torch-cuda", "libtorch_cuda.so", False),
)


@dataclass(frozen=True)
class LoadStep:
    """One library to load: by ``target`` (a path, or a bare soname when nothing was predicted)."""

    name: str  # the item's subject: load[NAME]
    target: str
    soname: str | None = None  # None for the root's own files, which are always opened by path
    predicted: Path | None = None
    rtld_global: bool = False
    owner: str | None = None  # the wheel to reinstall, as a requirement: "nvidia-cublas==13.1.1.3.*"
    installer: str = ""  # the root's INSTALLER, for the fix command

    def request(self) -> dict[str, object]:
        return {"name": self.name, "target": self.target, "soname": self.soname, "global": self.rtld_global}


@dataclass(frozen=True)
class LoadResult:
    """What the child saw for one step: the mapped file, the dlerror text, or how the child died."""

    ok: bool
    mapped: str | None = None
    how: str = ""
    error: str | None = None
    trouble: str | None = None  # the child crashed, hung or exited in this step
    stderr: tuple[str, ...] = ()


def torch_steps(torch_dir: Path) -> list[LoadStep]:
    return [LoadStep(name, str(torch_dir / "lib" / file), rtld_global=glob) for name, file, glob in TORCH_LOAD_ORDER]


def library_steps(
    libraries: Sequence[tuple[str, Path | None]], owners: Mapping[str, str] | None = None, *, installer: str = ""
) -> list[LoadStep]:
    """Steps for (soname, predicted path) pairs, in the given order; ``owners`` maps soname to its wheel."""
    return [
        LoadStep(soname, str(predicted) if predicted is not None else soname, soname, predicted,
                 owner=(owners or {}).get(soname), installer=installer)
        for soname, predicted in libraries
    ]


def probe_loads(
    steps: Sequence[LoadStep],
    *,
    timeout: float,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
) -> dict[str, LoadResult]:
    """Load every step in children; a step that kills or hangs its child is reported, the rest go on.

    Root steps (no soname) that loaded once are loaded again, silently, at the start of
    each new child, so that every library is seen in the process the root would make.
    """
    by_name = {step.name: step for step in steps}
    roots = [step for step in steps if step.soname is None]

    def request(pending: list[str], done: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        # the root libraries that loaded in an earlier child are loaded again first, silently
        prelude = [step for step in roots if done.get(step.name, {}).get("ok")]
        return {"prelude": [step.request() for step in prelude], "steps": [by_name[name].request() for name in pending]}

    found, blamed = run_steps("pytest_cudadeps.probes.load", list(by_name), request, timeout=timeout, paths=paths,
                              env=env, inhibit_ld_cache=inhibit_ld_cache)
    results = {name: LoadResult(False, trouble=blame.trouble, stderr=blame.stderr) for name, blame in blamed.items()}
    for name, data in found.items():
        mapped = data.get("mapped")
        results[name] = LoadResult(bool(data.get("ok")), os.path.normpath(mapped) if mapped else None,
                                   str(data.get("how", "")), data.get("error"))
    return results


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def load_finding(step: LoadStep, result: LoadResult, *, require_gpu: bool = False) -> Finding:
    """The item's finding for one step."""
    what = step.soname or step.target
    reinstall = reinstall_command(step.installer, step.owner) if step.owner else f"reinstall the wheel that provides {what}"
    if result.trouble:
        fix = (
            f"raise --cuda-deps-timeout if this host is just slow; otherwise {reinstall}"
            if result.trouble.startswith("hung") else
            f"{reinstall}; check LD_PRELOAD and LD_LIBRARY_PATH for a foreign copy"
        )
        return failed(CHECK, step.name, f"loading {step.target} {result.trouble}", *result.stderr, fix=fix,
                      target=step.target)
    if not result.ok:
        error = result.error or "unknown error"
        if step.soname in DRIVER_SONAMES and "cannot open shared object file" in error:
            return unavailable(CHECK, step.name, f"{step.soname} not found: no NVIDIA driver on this host ({error})",
                               require_gpu=require_gpu, fix=INSTALL_DRIVER)
        return failed(CHECK, step.name, f"dlopen({step.target}) failed: {error}", fix=reinstall, target=step.target)
    mapped = result.mapped or "?"
    if step.predicted is not None and result.mapped and not _same_file(result.mapped, step.predicted):
        return failed(
            CHECK, step.name,
            f"{what} was mapped from {result.mapped}, not from {step.predicted} as the linkage check predicted",
            f"{result.how}: {os.path.realpath(result.mapped)} is a different file",
            fix=(f"remove {os.path.dirname(result.mapped)} from LD_LIBRARY_PATH/LD_PRELOAD, or uninstall the "
                 f"copy there, so that {step.predicted} is used"),
            mapped=result.mapped, predicted=str(step.predicted),
        )
    return passed(CHECK, step.name, f"{mapped} ({result.how})", mapped=mapped, how=result.how)
