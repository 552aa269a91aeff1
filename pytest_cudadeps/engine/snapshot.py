"""One snapshot per run: what is installed and what each root needs, read once and passed to every check.

:func:`take_snapshot` scans the distributions, chooses the roots, walks each root's
requirements, reads torch's build and follows each root's ELF files through the loader's
search.  The checks (:mod:`pytest_cudadeps.plan`) are functions of the snapshot; nothing
is cached at module level, so two runs in one process (pytester) never share state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.build import Build, read_build
from pytest_cudadeps.engine.companions import Companion, find_companions
from pytest_cudadeps.engine.distributions import Distribution, Environment, scan
from pytest_cudadeps.engine.frameworks import cuda_of_linkage, elf_roots, extra_demands
from pytest_cudadeps.engine.installers import Interpreter, checked_interpreter
from pytest_cudadeps.engine.lazy import LazyResolution, resolve_lazy
from pytest_cudadeps.engine.linkage import Linkage, analyze
from pytest_cudadeps.engine.owners import Owners
from pytest_cudadeps.engine.providers import ProviderResolver
from pytest_cudadeps.engine.requirements import Closure, Closures, Demand, default_roots


@dataclass(frozen=True)
class Root:
    """A distribution whose CUDA dependencies are checked, with everything read about it.

    ``build`` is torch's build as ``torch/version.py`` states it, or why it could not be read;
    None for any other root.  ``linkage`` is None when the snapshot was taken without the ELF view.
    """

    dist: Distribution
    closure: Closure
    build: Build | str | None
    linkage: Linkage | None
    demands: dict[str, list[Demand]] = field(compare=False)
    extras: dict[str, list[Demand]] = field(default_factory=dict, compare=False)  # behind the root's own extras
    lazy: tuple[LazyResolution, ...] = ()  # what its libraries open by name at run time (needs the linkage)

    @property
    def key(self) -> str:
        return self.dist.key

    @property
    def cuda(self) -> str | None:
        """The CUDA version the root was built for (torch's ``cuda = '13.0'``; another framework's major from the
        libcudart its binaries need, ``13``), None for CPU or unknown."""
        if isinstance(self.build, Build):
            return self.build.cuda
        return cuda_of_linkage(self.linkage) if self.build is None else None

    @property
    def build_source(self) -> str:
        """Where :attr:`cuda` was read, or why it could not be."""
        if isinstance(self.build, Build):
            return str(self.build.version_file)
        return self.build if isinstance(self.build, str) else "no torch among the roots"


@dataclass(frozen=True)
class Snapshot:
    """Everything the static checks and the probes need to know about one environment."""

    settings: Settings
    env: Environment
    owners: Owners
    roots: tuple[Root, ...]
    unknown_roots: tuple[str, ...] = ()  # named with --cuda-deps-root but not installed
    companions: tuple[Companion, ...] = ()  # distributions with extensions linked against torch (ELF view only)
    interpreter: Interpreter | None = None  # the checked environment's python, which every pip or uv fix names

    @property
    def torch(self) -> Root | None:
        return next((root for root in self.roots if root.key == "torch"), None)

    def resolver(self, root: Root) -> ProviderResolver:
        return ProviderResolver(self.env, root.dist, root.demands, self.owners, root.cuda, root.extras)


def choose_roots(env: Environment, names: tuple[str, ...], closures: Closures) -> tuple[list[Distribution], list[str]]:
    """The roots the user named (and those of them not installed), or the default ones."""
    if not names:
        return default_roots(env, closures), []
    found = {name: env.get(name) for name in sorted(set(names))}
    return [d for d in found.values() if d is not None], [n for n, d in found.items() if d is None]


def take_snapshot(settings: Settings, *, with_linkage: bool = True, env: Environment | None = None) -> Snapshot:
    """Read the environment once. ``with_linkage=False`` leaves out the ELF view (the declared check alone);
    ``env`` is the scan of ``settings.paths`` when the caller has made it already."""
    env = env if env is not None else scan(settings.paths)
    closures = Closures(env)
    owners = Owners(env)
    dists, unknown = choose_roots(env, settings.roots, closures)
    if not settings.roots and with_linkage:
        dists += elf_roots(env, dists, closures)  # a framework that needs CUDA but requires no nvidia-* wheel
    roots = []
    for dist in dists:
        found = closures.of(dist)
        build = read_build(env, dist) if dist.key == "torch" else None
        roots.append(Root(dist, found, build, None, found.by_key(), extra_demands(dist)))
    snapshot = Snapshot(settings, env, owners, tuple(roots), tuple(unknown),
                        interpreter=checked_interpreter(settings.paths, os.environ))
    if not with_linkage:
        return snapshot
    use_cache = not settings.no_ld_cache
    linked = tuple(_linked(env, owners, root, use_cache) for root in roots)
    torch = next((root for root in linked if root.key == "torch"), None)
    companions = find_companions(env, known=torch.linkage.infos) if torch is not None and torch.linkage else ()
    return replace(snapshot, roots=linked, companions=companions)


def _linked(env: Environment, owners: Owners, root: Root, use_cache: bool) -> Root:
    """The root with its ELF view: the linkage walk, then what its libraries open by name at run time."""
    linkage = analyze(env, root.dist, use_ld_cache=use_cache, owners=owners,
                      cuda=root.build.cuda if isinstance(root.build, Build) else None)
    linked = replace(root, linkage=linkage)
    return replace(linked, lazy=resolve_lazy(env, owners, linkage, linked.cuda, use_cache=use_cache))
