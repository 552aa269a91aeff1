"""Libraries opened by name at run time: in no DT_NEEDED, so the linkage walk never meets them.

cuDNN 9 opens its sub-libraries when a first convolution, matmul or graph needs them, nvrtc
opens its builtins when it first compiles, torch opens ``libtorch_cuda_linalg.so`` at the first
linear-algebra call.  A missing or foreign copy passes every DT_NEEDED check and fails then
(``Unable to load any of {libcudnn_cnn.so.9.1.0, libcudnn_cnn.so.9.1, libcudnn_cnn.so.9,
libcudnn_cnn.so}``, m-bain/whisperX#1297).

:data:`LAZY` is the table: who opens what, the names it tries in order, and where the entry was
read (:mod:`pytest_cudadeps.tables.lazy_libraries`).  :func:`resolve_lazy` asks the ld.so model
(:mod:`pytest_cudadeps.engine.ldso`) where each
name would be found, from the opener as the caller (dlopen searches with the caller's RPATH or
RUNPATH), in the process the root's import makes; the library must come from the opener's own
wheel (same RECORD, so the same version) or, for a library of another wheel, from the wheel the
root declares for it.  The load probe opens the same predictions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.installers import reinstall_command
from pytest_cudadeps.engine.ldso import LoaderModel, Resolution, Searched
from pytest_cudadeps.engine.linkage import Linkage, is_cuda_soname
from pytest_cudadeps.engine.owners import Owners
from pytest_cudadeps.engine.providers import ProviderResolver
from pytest_cudadeps.tables.lazy_libraries import LAZY, LazyLibrary


@dataclass(frozen=True)
class LazyResolution:
    """Where one lazily opened library would be found, opened by one opener."""

    entry: LazyLibrary
    opener: Path
    opener_owner: Distribution | None
    tried: tuple[str, ...]
    resolution: Resolution | None  # the first try that found a file; None when none did
    searched: tuple[Searched, ...]  # every place tried, for every name

    @property
    def soname(self) -> str:
        return self.tried[-2] if len(self.tried) > 1 and ".so." not in self.tried[-1] else self.tried[-1]

    @property
    def path(self) -> Path | None:
        return self.resolution.path if self.resolution is not None else None


def _openers(linkage: Linkage, opened: list[Path], pattern: str) -> list[Path]:
    """The files of the root's process whose name matches: its own objects, the libraries they need, then
    those opened lazily before (libcudnn_graph.so.9 opens the engines)."""
    regex = re.compile(pattern)
    found = [p for p in linkage.objects if regex.match(p.name)]
    found += [lib.path for lib in linkage.libraries if lib.path is not None and regex.match(lib.soname)]
    found += [p for p in opened if regex.match(p.name)]
    return list(dict.fromkeys(found))[:1]  # one process maps one copy per soname: the first is the one


def _ships(owners: Owners, owner: Distribution | None, names: tuple[str, ...]) -> bool:
    """Whether the opener's wheel lists one of the names in its RECORD: a build without the library
    (torch linked without lazy linalg) never opens it.  An opener of no wheel is left out: its
    ``linkage[...]`` item already fails, as a library found outside the wheel that declares it."""
    if owner is None:
        return False
    return any(dist.key == owner.key for name in names for _, dist in owners.files_named(name))


def _model(env: Environment, linkage: Linkage, use_cache: bool) -> LoaderModel:
    """The process after the root's import, as the walk left it (nothing is read or resolved again)."""
    model = LoaderModel.for_this_process(
        use_cache=use_cache,
        descend=lambda path, soname: is_cuda_soname(soname) or any(loc in path.parents for loc in env.paths))
    model.infos.update(linkage.infos)
    model.loaded.update(linkage.loaded)
    model.loader_of.update(linkage.loader_of)
    model.preloaded.update(linkage.preloaded)
    return model


def resolve_lazy(env: Environment, owners: Owners, linkage: Linkage, cuda: str | None, *,
                 use_cache: bool = True) -> tuple[LazyResolution, ...]:
    """Every table entry whose opener the root's process maps, resolved as dlopen from the opener would.

    :func:`pytest_cudadeps.engine.snapshot.take_snapshot` asks once per root; the ``lazy[...]`` items
    and the load probe's steps read the root's ``lazy``.
    """
    model = _model(env, linkage, use_cache)
    found: list[LazyResolution] = []
    for entry in LAZY:
        opened = [lazy.path for lazy in found if lazy.path is not None]
        for opener in _openers(linkage, opened, entry.opener):
            owned = owners.of(opener)
            owner = owned[0][0] if owned else None
            tried = entry.names(owner.version if owner else None, cuda)
            if not tried or (entry.same_wheel and not _ships(owners, owner, tried)):
                continue
            searched: list[Searched] = []
            hit = None
            for name in tried:
                resolution = model.resolve(name, opener)
                searched += [place for place in resolution.searched if place not in searched]
                if resolution.path is not None and not resolution.problem:
                    hit = resolution
                    model.load([resolution.path])  # what it needs is mapped now, as in the real process
                    break
            found.append(LazyResolution(entry, opener, owner, tried, hit, tuple(searched)))
    return tuple(found)


def lazy_fix(lazy: LazyResolution, resolver: ProviderResolver) -> str:
    """The command that puts a lazily opened library back: its opener's wheel, or the wheel the root declares."""
    if lazy.entry.same_wheel and lazy.opener_owner is not None:
        owner = lazy.opener_owner
        return reinstall_command(resolver.root.installer, f"{owner.name}=={owner.version}")
    return resolver.fix(lazy.soname, None)
