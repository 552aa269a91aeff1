"""One snapshot per run: what is installed and what each root needs, read once and passed to every check.

:func:`take_snapshot` scans the distributions, chooses the roots, walks each root's
requirements, reads torch's build and follows each root's ELF files through the loader's
search.  The checks (:mod:`pytest_cudadeps.plan`) are functions of the snapshot; nothing
is cached at module level, so two runs in one process (pytester) never share state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from packaging.requirements import InvalidRequirement, Requirement

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.build import Build, read_build
from pytest_cudadeps.engine.companions import Companion, find_companions
from pytest_cudadeps.engine.distributions import Distribution, Environment, scan
from pytest_cudadeps.engine.frameworks import (
    cuda_of_linkage,
    elf_roots,
    extra_demands,
    framework_extras,
    installed_frameworks,
    is_cuda_wheel,
)
from pytest_cudadeps.engine.installers import Interpreter, checked_interpreter
from pytest_cudadeps.engine.lazy import LazyResolution, resolve_lazy
from pytest_cudadeps.engine.linkage import Linkage, analyze
from pytest_cudadeps.engine.owners import Owners
from pytest_cudadeps.engine.providers import ProviderResolver
from pytest_cudadeps.engine.requirements import Closure, Closures, Demand, default_roots
from pytest_cudadeps.tables.frameworks import Framework


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
    framework: Framework | None = field(default=None, compare=False)  # how it finds its CUDA libraries, if known
    asked: tuple[str, ...] = ()  # the root's own extras that are required (jax[cuda13])

    @property
    def key(self) -> str:
        return self.dist.key

    @property
    def cuda(self) -> str | None:
        """The CUDA version the root was built for (torch's ``cuda = '13.0'``; another framework's major from the
        libcudart its binaries need, ``13``), None for CPU or unknown."""
        if isinstance(self.build, Build):
            return self.build.cuda
        if self.framework is not None:
            return self.framework.cuda
        return cuda_of_linkage(self.linkage) if self.build is None else None

    @property
    def spec(self) -> str:
        """``jax[cuda13]``: the root as a user installs it, with the extras that are required."""
        return f"{self.dist.name}[{','.join(self.asked)}]" if self.asked else self.dist.name

    @property
    def build_source(self) -> str:
        """Where :attr:`cuda` was read, or why it could not be."""
        if isinstance(self.build, Build):
            return str(self.build.version_file)
        if self.framework is not None:
            return f"{self.framework.marker} (the {self.framework.key} build installed)"
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


Chosen = tuple[Distribution, tuple[str, ...]]  # a root and its own extras that are required


def _named(name: str) -> tuple[str, tuple[str, ...]]:
    """``jax[cuda13]`` -> ("jax", ("cuda13",)); a name that is no requirement is taken as it is."""
    try:
        req = Requirement(name)
    except InvalidRequirement:
        return name, ()
    return req.name, tuple(sorted(req.extras))


def choose_roots(env: Environment, names: tuple[str, ...], closures: Closures) -> tuple[list[Chosen], list[str]]:
    """The roots the user named (``jax[cuda13]``: with those extras; and those not installed), or the default ones."""
    if not names:
        return _default(env, closures), []
    chosen, unknown = [], []
    for name in sorted(set(names)):
        key, extras = _named(name)
        dist = env.get(key)
        if dist is None:
            unknown.append(name)
        else:
            chosen.append((dist, extras))
    return chosen, unknown


def _default(env: Environment, closures: Closures) -> list[Chosen]:
    """The installed frameworks with their CUDA extra, torch, and what else requires a CUDA wheel that those do not
    reach; the CUDA wheels themselves (nvidia-cudnn-cu13, cuda-toolkit) are roots only when nothing else is."""
    frameworks = installed_frameworks(env)
    chosen: list[Chosen] = []
    for key, framework in sorted(frameworks.items()):
        dist = env.get(key)
        if dist is not None:
            chosen.append((dist, framework_extras(dist, framework)))
    reached = {dem.key for dist, extras in chosen for dem in closures.of(dist, extras).demands}
    others = [d for d in default_roots(env, closures) if d.key not in frameworks and d.key not in reached]
    if chosen or any(not is_cuda_wheel(d.key) for d in others):
        others = [d for d in others if not is_cuda_wheel(d.key)]
    chosen += [(d, ()) for d in others]
    return sorted(chosen, key=lambda c: (c[0].key != "torch", c[0].key))


def take_snapshot(settings: Settings, *, with_linkage: bool = True, env: Environment | None = None) -> Snapshot:
    """Read the environment once. ``with_linkage=False`` leaves out the ELF view (the declared check alone);
    ``env`` is the scan of ``settings.paths`` when the caller has made it already."""
    env = env if env is not None else scan(settings.paths)
    closures = Closures(env)
    owners = Owners(env)
    chosen, unknown = choose_roots(env, settings.roots, closures)
    if not settings.roots and with_linkage:  # a framework that needs CUDA but requires no nvidia-* wheel
        chosen += [(d, ()) for d in elf_roots(env, [d for d, _ in chosen], closures)]
    frameworks = installed_frameworks(env)
    roots = []
    for dist, extras in chosen:
        found = closures.of(dist, extras)
        build = read_build(env, dist) if dist.key == "torch" else None
        roots.append(Root(dist, found, build, None, found.by_key(), extra_demands(dist),
                          framework=frameworks.get(dist.key), asked=extras))
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
    framework = (root.dist.location, root.framework) if root.framework is not None else None
    return replace(linked, lazy=resolve_lazy(env, owners, linkage, linked.cuda, use_cache=use_cache,
                                             framework=framework))
