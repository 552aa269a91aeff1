"""The children of one run, each started once: :class:`Probes`, and what each child is asked.

:class:`Probes` starts each child the first time an item needs its answer, or ahead of the items
(:meth:`Probes.start`), and keeps the answer: the driver child for ``driver[...]``, ``arch[...]``
and ``host[...]``, the torch child for torch's ``load[...]`` and ``smoke[...]`` items, one load
child per other root.  :func:`load_steps` says what a load child opens for a root.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Generic, Protocol, TypeVar

from pytest_cudadeps.engine.companions import import_names
from pytest_cudadeps.engine.host import HostFacts, read_host
from pytest_cudadeps.engine.lazy import lazy_fix
from pytest_cudadeps.engine.linkage import ResolvedLibrary
from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.probes.driver import DriverInfo, probe_driver
from pytest_cudadeps.probes.framework import FrameworkRun, probe_framework
from pytest_cudadeps.probes.load import LoadResult, LoadStep, library_steps, probe_loads
from pytest_cudadeps.probes.runner import ChildGroup, Running
from pytest_cudadeps.probes.torch import SmokeRun, TorchRun, probe_torch, torch_own_steps

T = TypeVar("T")


class Once(Generic[T]):
    """A value computed once per run: on first use, or ahead in a background thread after :meth:`start`.

    A child's answer is the value: :meth:`start` lets the children run while the static checks
    do, and an item waits only for the answer it needs.
    """

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._lock = threading.Lock()
        self._value: list[T] = []
        self._error: list[BaseException] = []
        self._starting = threading.Lock()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        with self._lock:
            if self._value or self._error:
                return
            try:
                self._value.append(self._compute())
            except BaseException as exc:  # handed to the item that asks, as if it had computed it
                self._error.append(exc)

    def start(self) -> None:
        """Compute in a background thread (once, however often it is asked)."""
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cudadeps-probe", daemon=True)
                self._thread.start()

    def __call__(self) -> T:
        self._run()  # waits for a started computation: it holds the lock until done
        if self._error:
            raise self._error[0]
        return self._value[0]


class _Startable(Protocol):
    def start(self) -> None: ...


class Probes:
    """The children of one run: each started once, ahead (:meth:`start`) or when an item first needs it.

    torch is imported once, in the torch child: a CUDA torch's libraries are loaded there one by
    one first (the ``load[...]`` answers), then torch is imported for the products and, with 2+
    GPUs, the all-reduce (the ``smoke[...]`` answers).  Other roots get a load child of their own.
    """

    def __init__(self, snapshot: Snapshot, group: ChildGroup | None = None, early: Running | None = None) -> None:
        settings = snapshot.settings
        self.snapshot = snapshot
        self.group = group or ChildGroup()  # the plugin stops it when the session ends
        self.timeout = settings.timeout
        self.paths = list(settings.paths) if settings.paths is not None else None
        self.inhibit_ld_cache = settings.no_ld_cache
        self.cudart = _cudart(snapshot)
        self.driver: Once[DriverInfo] = Once(lambda: probe_driver(
            timeout=self.timeout, cudart=self.cudart, paths=self.paths, inhibit_ld_cache=self.inhibit_ld_cache,
            group=self.group))
        self.host: Once[HostFacts] = Once(lambda: read_host(Path(settings.host_root)))
        self._loads: dict[str, Once[dict[str, LoadResult]]] = {}
        self._torch: Once[TorchRun] | None = None
        self._frameworks: dict[str, Once[FrameworkRun]] = {}
        # the checked environment's own Python: a framework's search of site.getsitepackages() sees what its job sees
        self.python = snapshot.interpreter.python if snapshot.interpreter is not None else None
        self._wanted: list[_Startable] = [self.driver]  # the children start() starts
        self._early = early  # the torch child, started ahead (smoke.start_torch), sent torch's own libraries

    def torch_child(self, steps: Sequence[LoadStep] = ()) -> Once[TorchRun]:
        """The one child that imports torch, loading ``steps`` first and the companions last (made on first ask)."""
        if self._torch is None:
            imports = [name for companion in self.snapshot.companions for name in import_names(companion)]
            compile_, early, self._early = self.snapshot.settings.compile, self._early, None
            self._torch = Once(lambda: probe_torch(steps, imports=imports, compile=compile_, timeout=self.timeout,
                                                   paths=self.paths, inhibit_ld_cache=self.inhibit_ld_cache,
                                                   group=self.group, started=early))
            self._wanted.append(self._torch)
        return self._torch

    def framework_child(self, root: Root) -> Once[FrameworkRun]:
        """The child that imports a framework other than torch and makes it open its libraries (made on first ask)."""
        framework = root.framework
        assert framework is not None
        if root.key not in self._frameworks:
            self._frameworks[root.key] = Once(lambda: probe_framework(
                framework, timeout=self.timeout, paths=self.paths, inhibit_ld_cache=self.inhibit_ld_cache,
                group=self.group, executable=self.python))
            self._wanted.append(self._frameworks[root.key])
        return self._frameworks[root.key]

    def smoke(self) -> SmokeRun:
        return self.torch_child()().smoke

    def loads_for(self, root: Root, steps: Sequence[LoadStep]) -> Callable[[], dict[str, LoadResult]]:
        """The answers to a root's load steps (one child run for all of them)."""
        if root.key == "torch" and (root.cuda or self.snapshot.companions):
            torch = self.torch_child(steps)
            return lambda: torch().loads
        if root.key not in self._loads:
            self._loads[root.key] = Once(lambda: probe_loads(steps, timeout=self.timeout, paths=self.paths,
                                                             inhibit_ld_cache=self.inhibit_ld_cache, group=self.group))
            if steps:
                self._wanted.append(self._loads[root.key])
        return self._loads[root.key]

    def start(self) -> None:
        """Start every child the items will need, each in a thread of its own; items then wait for answers."""
        for once in self._wanted:
            once.start()
        if self._early is not None:  # started ahead for a torch child that no item needs: its request ends here
            threading.Thread(target=self._early.wait, name="cudadeps-unneeded", daemon=True).start()
            self._early = None


def load_steps(snapshot: Snapshot, root: Root, seen: set[str]) -> list[LoadStep]:
    """What the load child opens for a root: torch's own libraries as its import does, then each CUDA
    library the linkage resolved that no earlier root loads already, each with the resolver's fix."""
    assert root.linkage is not None
    steps = torch_own_steps(snapshot.env, root.dist, root.cuda) + framework_steps(snapshot, root, seen)
    libraries = [lib for lib in root.linkage.cuda_libraries() if lib.soname not in seen and not _optional_absent(root, lib)]
    seen.update(lib.soname for lib in libraries)
    resolver = snapshot.resolver(root)
    steps += library_steps([(lib.soname, lib.path) for lib in libraries],
                           {lib.soname: resolver.fix(lib.soname, lib.path) for lib in libraries},
                           {lib.soname: declared_files(snapshot, root, lib.soname, lib.path) for lib in libraries})
    # then what the libraries open by name at run time (cuDNN's sub-libraries...), each by the path their
    # opener's search predicts; one predicted nowhere is the static lazy[...] item's to explain
    lazy = {soname: (path, fix) for soname, path, fix in lazy_load_targets(snapshot, root)
            if path is not None and soname not in seen}
    seen.update(lazy)
    steps += library_steps([(soname, path) for soname, (path, _) in lazy.items()], {s: f for s, (_, f) in lazy.items()})
    return steps


def _optional_absent(root: Root, lib: ResolvedLibrary) -> bool:
    """A library the framework goes on without (CuPy's NCCL) that is not there: nothing to load."""
    return lib.path is None and root.framework is not None and bool(root.framework.optional(lib.soname))


def framework_steps(snapshot: Snapshot, root: Root, seen: set[str]) -> list[LoadStep]:
    """A framework's own libraries, in its order: it opens them before its extension modules need them."""
    if root.framework is None:
        return []
    label = root.framework.label
    own = {lazy.soname: (lazy.path, fix) for lazy, (_, _, fix) in zip(root.lazy, lazy_load_targets(snapshot, root))
           if lazy.entry.label == label and lazy.path is not None and lazy.soname not in seen}
    seen.update(own)
    return library_steps([(soname, path) for soname, (path, _) in own.items()], {s: f for s, (_, f) in own.items()})


def declared_files(snapshot: Snapshot, root: Root, soname: str, path: Path | None) -> list[Path]:
    """The files named ``soname`` of the distribution the root declares for it (its wheel's copies)."""
    declared = snapshot.resolver(root).declared(soname, path)
    if declared is None:
        return []
    return [found for found, dist in snapshot.owners.files_named(soname) if dist.key == declared.key]


def _cudart(snapshot: Snapshot) -> Path | None:
    """The libcudart the linkage resolved, torch's first: the driver child asks it for its version."""
    roots = sorted(snapshot.roots, key=lambda root: root.key != "torch")
    for root in roots:
        if root.linkage is not None:
            found = next((lib.path for lib in root.linkage.libraries
                          if lib.soname.startswith("libcudart.so") and lib.path), None)
            # a framework that opens its own libraries (jax, CuPy...): the libcudart its preload opens
            found = found or next((lazy.path for lazy in root.lazy
                                   if lazy.soname.startswith("libcudart.so") and lazy.path), None)
            if found is not None or root.key == "torch":
                return found
    return None


def lazy_load_targets(snapshot: Snapshot, root: Root) -> list[tuple[str, Path | None, str]]:
    """(soname, predicted path, fix) for each library ``root``'s libraries open lazily: what the load probe opens.

    The predicted path is None where nothing would be found: the static ``lazy[...]`` item says so,
    and the probe skips it (a bare name opened from the probe would search another object's paths).
    The probe opens them after the root's own steps, in the process the root's import made.
    """
    resolver = snapshot.resolver(root)
    return [(lazy.soname, lazy.path, lazy_fix(lazy, resolver)) for lazy in root.lazy]
