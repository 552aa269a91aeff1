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

from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.installers import reinstall_command
from pytest_cudadeps.engine.ldso import LoaderModel, Resolution, Searched, Step, Via
from pytest_cudadeps.engine.linkage import Linkage, is_cuda_soname
from pytest_cudadeps.engine.owners import Owners
from pytest_cudadeps.engine.providers import ProviderResolver
from pytest_cudadeps.tables.frameworks import Framework, FrameworkLibrary
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


def _framework_entry(framework: Framework, lib: FrameworkLibrary) -> LazyLibrary:
    return LazyLibrary(re.escape(Path(framework.opener).name) + "$", (lib.soname,), False, framework.source,
                       f"{framework.label} does not find it ({framework.how})", optional=lib.optional,
                       label=framework.label)


def _framework_search(env: Environment, model: LoaderModel, opener: Path, framework: Framework,
                      lib: FrameworkLibrary) -> tuple[Resolution | None, tuple[Searched, ...]]:
    """Where the framework finds one library: its wheel folders under each site-packages folder, opened by path,
    then the system's dlopen by soname (from the opener when it is a shared object, else from the interpreter)."""
    searched: list[Searched] = []
    for site in env.paths:
        for folder in lib.folders:
            candidate = site / folder / lib.soname
            searched.append(Searched(Via(Step.PATH), candidate.parent))
            if candidate.is_file():
                return Resolution(lib.soname, opener, candidate, Via(Step.PATH, framework.label), tuple(searched)), ()
    caller = opener if opener.name.endswith((".so", ".so.2")) and opener.is_file() else model.executable
    if caller is None:
        return None, tuple(searched)
    resolution = model.resolve(lib.soname, caller)
    searched += resolution.searched
    if resolution.path is not None and not resolution.problem:
        return resolution, tuple(searched)
    return None, tuple(searched)


def resolve_framework(env: Environment, owners: Owners, model: LoaderModel, site: Path,
                      framework: Framework) -> list[LazyResolution]:
    """The libraries a framework opens itself, in its order, each mapped (with what it needs) once found."""
    opener = site / framework.opener
    owned = owners.of(opener)
    owner = owned[0][0] if owned else None
    found = []
    for lib in framework.libraries:
        hit, searched = _framework_search(env, model, opener, framework, lib)
        if hit is not None and hit.path is not None:
            model.load([hit.path])
        found.append(LazyResolution(_framework_entry(framework, lib), opener, owner, (lib.soname,), hit,
                                    searched or (hit.searched if hit else ())))
    return found


def resolve_lazy(env: Environment, owners: Owners, linkage: Linkage, cuda: str | None, *,
                 use_cache: bool = True, framework: tuple[Path, Framework] | None = None) -> tuple[LazyResolution, ...]:
    """Every table entry whose opener the root's process maps, resolved as dlopen from the opener would.

    A framework root (``framework``: its site-packages folder and its row of
    :data:`pytest_cudadeps.tables.frameworks.FRAMEWORKS`) first opens its own libraries, in its order; what they
    open by name (cuDNN's sub-libraries) follows.  :func:`pytest_cudadeps.engine.snapshot.take_snapshot` asks
    once per root; the ``lazy[...]`` items and the load probe's steps read the root's ``lazy``.
    """
    model = _model(env, linkage, use_cache)
    found: list[LazyResolution] = resolve_framework(env, owners, model, *framework) if framework else []
    for entry in LAZY:
        opened = [lazy.path for lazy in found if lazy.path is not None]
        for opener in _openers(linkage, opened, entry.opener):
            owned = owners.of(opener)
            owner = owned[0][0] if owned else None
            tried = entry.names(owner.version if owner else None, cuda)
            if not tried or (entry.same_wheel and not _ships(owners, owner, tried)):
                continue
            hit, searched = _first_found(model, opener, tried)
            found.append(LazyResolution(entry, opener, owner, tried, hit, searched))
    return tuple(found)


def _first_found(model: LoaderModel, opener: Path, tried: tuple[str, ...]) -> tuple[Resolution | None, tuple[Searched, ...]]:
    """The first name dlopen from ``opener`` finds (mapped, with what it needs, as in the real process)."""
    searched: list[Searched] = []
    for name in tried:
        resolution = model.resolve(name, opener)
        searched += [place for place in resolution.searched if place not in searched]
        if resolution.path is not None and not resolution.problem:
            model.load([resolution.path])
            return resolution, tuple(searched)
    return None, tuple(searched)


def lazy_fix(lazy: LazyResolution, resolver: ProviderResolver) -> str:
    """The command that puts a lazily opened library back: its opener's wheel, or the wheel the root declares."""
    beside = lazy.opener.parent / lazy.soname
    if lazy.entry.same_wheel and lazy.path is None and beside.is_file():
        # the file is there, beside its opener, which does not search its own folder (nvidia-cuda-nvrtc 13.0.88 has no
        # RUNPATH, 13.5.37 has $ORIGIN): no reinstall of that version changes it; the loader's path does, for every
        # process (measured: jax's nvrtcCompileProgram beside torch 2.14.1's pin, then green)
        return f'export LD_LIBRARY_PATH={quote(str(beside.parent))}"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"'
    if lazy.entry.same_wheel and lazy.opener_owner is not None:
        owner = lazy.opener_owner
        return reinstall_command(resolver.root.installer, f"{owner.name}=={owner.version}")
    return resolver.fix(lazy.soname, None)
