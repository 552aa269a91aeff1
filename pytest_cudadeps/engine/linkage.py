"""Native linkage: what each binary of a root needs, and which file ld.so will map for each name.

:func:`analyze` loads the root's own shared objects into a simulated process
(:mod:`pytest_cudadeps.engine.ldso`) in the order the root's import loads them and records, per
needed soname, the file the loader settles on and who owns it.  Nothing is loaded or run.
The findings about the result are in :mod:`pytest_cudadeps.checks.linkage`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.elf import ElfInfo, ElfProblem
from pytest_cudadeps.engine.ldso import LoaderModel, Resolution, Via
from pytest_cudadeps.engine.owners import Owners, is_shared_object_name
from pytest_cudadeps.engine.torch_init import NO_PRELOAD, Preload, read_preload
from pytest_cudadeps.tables.wheels import CUDA_SONAME_PREFIXES


@dataclass(frozen=True)
class ResolvedLibrary:
    """One needed soname and the file the loader would map for it.

    ``path`` is None when the loader finds nothing; ``via`` says which step of the search
    found it; ``owner`` is the distribution whose RECORD lists ``path``; ``resolution`` is the
    first request for the name (the one that decides, with the places it searched).
    """

    soname: str
    path: Path | None
    via: Via
    needed_by: tuple[Path, ...]
    owner: str | None
    resolution: Resolution | None = None


@dataclass(frozen=True)
class Linkage:
    """Every library a root's own shared objects need, transitively, as the loader resolves them.

    ``infos`` holds the ELF facts the walk read (read-only), so that the findings can look at
    symbol versions without reading a file twice.
    """

    root: Distribution
    objects: tuple[Path, ...]  # the root's own shared objects the walk started from
    libraries: tuple[ResolvedLibrary, ...]  # sorted by soname
    infos: Mapping[Path, ElfInfo | ElfProblem] = field(default_factory=lambda: MappingProxyType({}))
    executable: Path | None = None
    # the loader's environment the walk used, for the security findings
    ld_library_path: tuple[str, ...] = ()  # LD_LIBRARY_PATH's entries, "" ones kept
    preload: tuple[str, ...] = ()  # LD_PRELOAD's entries
    preloaded: tuple[Path, ...] = ()  # the files LD_PRELOAD mapped (a bare name is searched for)
    # the simulated process after the walk: what each soname is mapped from, and who mapped each file
    # (a model of the same process, for what the libraries open later, starts from these)
    loaded: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    loader_of: Mapping[Path, Path | None] = field(default_factory=lambda: MappingProxyType({}))
    # what the root's import opened by path before its own libraries (torch/__init__.py's preload), and where that
    # was read (or why nothing was)
    import_preload: tuple[Path, ...] = ()
    import_source: str = ""

    def cuda_libraries(self) -> tuple[ResolvedLibrary, ...]:
        return tuple(lib for lib in self.libraries if is_cuda_soname(lib.soname))

    def info(self, path: Path) -> ElfInfo | ElfProblem | None:
        return self.infos.get(path)

    def library(self, soname: str) -> ResolvedLibrary | None:
        return next((lib for lib in self.libraries if lib.soname == soname), None)


def is_cuda_soname(soname: str) -> bool:
    return soname.startswith(CUDA_SONAME_PREFIXES)


def root_objects(env: Environment, root: Distribution) -> tuple[Path, ...]:
    """The root's own shared objects, in the order its import loads them.

    torch: ``torch/lib/libtorch_global_deps.so`` first (torch/__init__.py dlopens it with
    RTLD_GLOBAL), then ``torch/_C*.so``, then the rest of ``torch/lib/*.so*``.  Any other
    root: the shared objects its RECORD lists.
    """
    package = env.package_dir(root, root.key.replace("-", "_"))
    if root.key == "torch" and package is not None:
        lib = package / "lib"
        first = [lib / "libtorch_global_deps.so"]
        extensions = sorted(package.glob("_C*.so"))
        rest = sorted(p for p in lib.glob("*.so*") if p not in first)
        # anything at those names: a FIFO, a folder or a dangling link there is the elf[...] item's to report
        candidates = [p for p in (*first, *extensions, *rest) if os.path.lexists(p)]
    else:
        candidates = sorted(p for p, _ in root.owned_files() if is_shared_object_name(p.name))
    return tuple(dict.fromkeys(candidates))


def analyze(
    env: Environment,
    root: Distribution,
    *,
    use_ld_cache: bool = True,
    ld_library_path: str | None = None,
    ld_preload: str | None = None,
    owners: Owners | None = None,
    cuda: str | None = None,
) -> Linkage:
    """Load the root's objects in a simulated process and record where each needed library comes from.

    torch's objects load as its import loads them (:func:`load_torch`); ``cuda`` is the CUDA version it was
    built for (its preload looks in ``nvidia/cu<major>/lib``).  System libraries (libc, libstdc++...) are
    resolved but not read or followed: they need no CUDA library and would cost a third of the time.
    """
    owners = owners or Owners(env)
    model = LoaderModel.for_this_process(
        use_cache=use_ld_cache, ld_library_path=ld_library_path, ld_preload=ld_preload,
        descend=lambda path, soname: is_cuda_soname(soname) or any(loc in path.parents for loc in env.paths))
    objects = root_objects(env, root)
    preload = NO_PRELOAD
    package = env.package_dir(root, "torch") if root.key == "torch" else None
    if package is not None and objects and objects[0].name == "libtorch_global_deps.so":
        preload = read_preload(package)
        load_torch(model, objects, preload, env.paths, cuda.split(".")[0] if cuda else None)
    else:
        model.load(objects)
    libraries = _libraries(model, owners)
    return Linkage(root, objects, tuple(libraries), MappingProxyType(dict(model.infos)), model.executable,
                   model.ld_library_path, model.preload, tuple(sorted(model.preloaded)),
                   MappingProxyType(dict(model.loaded)), MappingProxyType(dict(model.loader_of)),
                   tuple(model.opened_by), preload.source)


def _libraries(model: LoaderModel, owners: Owners) -> list[ResolvedLibrary]:
    """Each soname the walk looked up: where it stayed loaded, by the lookup that found it, and whose file it is."""
    by_soname: dict[str, list[Resolution]] = {}
    for resolution in model.resolutions:
        by_soname.setdefault(resolution.soname, []).append(resolution)
    libraries = []
    for soname, resolutions in sorted(by_soname.items()):
        loaded = model.loaded.get(soname)
        # the lookup that found what stayed loaded: after a failed first try (torch's strict preload found the
        # library in another sys.path entry: a namespace package split across entries), not the failed try
        first = next((r for r in resolutions if loaded is not None and r.path == loaded and not r.problem),
                     resolutions[0])
        path = loaded or first.path
        owned = owners.of(path) if path else []
        libraries.append(ResolvedLibrary(
            soname, path if not first.problem else first.path, first.via,
            tuple(dict.fromkeys(r.needed_by for r in resolutions)),
            owned[0][0].name if owned else None, first,
        ))
    return libraries


def load_torch(model: LoaderModel, objects: Sequence[Path], preload: Preload, entries: Sequence[Path],
               cuda_major: str | None) -> None:
    """torch's objects loaded as ``import torch`` loads them (:mod:`pytest_cudadeps.engine.torch_init`).

    ``libtorch_global_deps.so`` first.  When it loads and the trigger's text is in a mapped file's path,
    each library of the preload is opened by path in turn, the first one whose own dependencies fail
    ending the preload (torch swallows the error); when it fails, the strict list is opened until the
    first one missing (torch raises there).  Then ``torch._C`` and the rest of ``torch/lib``.
    """
    who = f"torch/__init__.py ({preload.source.rsplit(', ', 1)[-1]})" if preload.libraries else ""
    global_deps, rest = objects[0], objects[1:]
    loaded = _loads(model, [global_deps])
    if loaded and preload.trigger and any(preload.trigger in os.path.realpath(p) for p in model.loaded.values()):
        for path in preload.paths(entries, cuda_major):
            if isinstance(path, Path) and not _loads(model, [path], opened_by=who):
                break  # `except Exception: pass` around the whole loop
    elif not loaded and preload.strict:
        for path in preload.paths(entries, cuda_major, strict=True):
            if not isinstance(path, Path) or not _loads(model, [path], opened_by=who):
                break  # ValueError: <glob> not found in the system path; or the OSError of that CDLL
        else:  # then `ctypes.CDLL(global_deps_lib_path)` again: its lookups find the copies preloaded by path
            _loads(model, [global_deps])
    model.load(rest)


def _loads(model: LoaderModel, objects: list[Path], *, opened_by: str = "") -> bool:
    """Load ``objects`` as one dlopen does: all or nothing.  A dependency found nowhere, or refused, fails it, and
    what it mapped is unmapped again (its resolutions stay recorded: the walk reports them)."""
    loaded, loader_of = dict(model.loaded), dict(model.loader_of)
    first = len(model.resolutions)
    if opened_by:
        for path in objects:
            model.opened_by[path] = opened_by
    model.load(objects)
    if all(r.path is not None and not r.problem for r in model.resolutions[first:]):
        return True
    model.loaded, model.loader_of = loaded, loader_of
    for path in objects:
        model.opened_by.pop(path, None)
    return False
