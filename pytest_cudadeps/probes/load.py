"""The load probe: do the libraries really load, and from the file the static check predicted?

In a child process (:mod:`pytest_cudadeps.probes.child.load`) the root's own libraries are loaded
first, as the root loads them (torch: ``torch/lib/libtorch_global_deps.so`` with
``RTLD_GLOBAL``, then ``torch/lib/libtorch_cuda.so``, which pulls in the CUDA libraries
through its RPATH), then each CUDA library the linkage check resolved.  A library already
mapped by then is reported where it was mapped from; any other one is opened by its
predicted path (or by soname when nothing was predicted).  When the child crashes or hangs,
the library in progress gets the blame and a new child goes on with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from pytest_cudadeps.probes.child.protocol import Loaded, LoadRequest, LoadTarget
from pytest_cudadeps.probes.runner import Blame, ChildGroup, JsonObject, run_steps
from pytest_cudadeps.tables.torch import TORCH_LOAD_ORDER

LoadResult = Union[Loaded, Blame]  # what the child said for a step, or how it died in it


@dataclass(frozen=True)
class LoadStep:
    """One library to load: by ``target`` (a path, or a bare soname when nothing was predicted).

    ``fix`` is the command that puts the library back, from the provider resolver: the root's
    reinstall for its own files, the providing wheel's install or reinstall for a CUDA library.
    ``accepted`` are the files the root declares for the soname (its wheel's copies): one of them mapped
    is right, whatever the walk predicted.
    """

    name: str  # the item's subject: load[NAME]
    target: str
    soname: str | None = None  # None for the root's own files, which are always opened by path
    predicted: Path | None = None
    rtld_global: bool = False
    fix: str = ""
    accepted: tuple[Path, ...] = ()

    def request(self) -> LoadTarget:
        return LoadTarget(self.name, self.target, self.soname, self.rtld_global)


def torch_steps(torch_dir: Path, fix: str = "") -> list[LoadStep]:
    return [LoadStep(name, str(torch_dir / "lib" / file), rtld_global=glob, fix=fix)
            for name, file, glob in TORCH_LOAD_ORDER]


def library_steps(libraries: Sequence[tuple[str, Path | None]], fixes: Mapping[str, str] | None = None,
                  accepted: Mapping[str, Sequence[Path]] | None = None) -> list[LoadStep]:
    """Steps for (soname, predicted path) pairs, in the given order; ``fixes`` maps a soname to its fix command,
    ``accepted`` to the files the root declares for it."""
    return [
        LoadStep(soname, str(predicted) if predicted is not None else soname, soname, predicted,
                 fix=(fixes or {}).get(soname, ""), accepted=tuple((accepted or {}).get(soname, ())))
        for soname, predicted in libraries
    ]


def probe_loads(
    steps: Sequence[LoadStep],
    *,
    timeout: float,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
) -> dict[str, LoadResult]:
    """Load every step in children; a step that kills or hangs its child is reported, the rest go on.

    Root steps (no soname) that loaded once are loaded again, silently, at the start of
    each new child, so that every library is seen in the process the root would make.
    """
    runs = run_steps("pytest_cudadeps.probes.child.load", [step.name for step in steps], load_request(steps),
                     timeout=timeout, paths=paths, env=env, inhibit_ld_cache=inhibit_ld_cache, group=group)
    return {step.name: runs.answer(Loaded, step.name) for step in steps}


def load_request(steps: Sequence[LoadStep]) -> Callable[[list[str], Mapping[str, JsonObject]], LoadRequest]:
    """A new child's load request: the steps still to do, after the root's own libraries that loaded in an
    earlier child (loaded again, silently, so that every library is seen in the process the root makes)."""
    by_name = {step.name: step for step in steps}
    roots = [step for step in steps if step.soname is None]

    def request(pending: list[str], done: Mapping[str, JsonObject]) -> LoadRequest:
        prelude = [step for step in roots if step.name not in pending and done.get(step.name, {}).get("ok") is True]
        return LoadRequest(tuple(step.request() for step in prelude), tuple(by_name[name].request() for name in pending))

    return request
