"""Libraries opened by name at run time: in no DT_NEEDED, so the linkage walk never meets them.

cuDNN 9 opens its sub-libraries when a first convolution, matmul or graph needs them, nvrtc
opens its builtins when it first compiles, torch opens ``libtorch_cuda_linalg.so`` at the first
linear-algebra call.  A missing or foreign copy passes every DT_NEEDED check and fails then
(``Unable to load any of {libcudnn_cnn.so.9.1.0, libcudnn_cnn.so.9.1, libcudnn_cnn.so.9,
libcudnn_cnn.so}``, m-bain/whisperX#1297).

:data:`LAZY` is the table: who opens what, the names it tries in order, and where the entry was
read.  :func:`lazy_resolutions` asks the ld.so model (:mod:`pytest_cudadeps.engine.ldso`) where each
name would be found, from the opener as the caller (dlopen searches with the caller's RPATH or
RUNPATH), in the process the root's import makes; the library must come from the opener's own
wheel (same RECORD, so the same version) or, for a library of another wheel, from the wheel the
root declares for it.  :func:`lazy_load_targets` gives the load probe the same predictions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.checks.findings import Finding, failed, passed
from pytest_cudadeps.checks.linkage import searched_text
from pytest_cudadeps.engine.distributions import Distribution
from pytest_cudadeps.engine.installers import reinstall_command
from pytest_cudadeps.engine.ldso import LoaderModel, Resolution, Searched, Step, Via
from pytest_cudadeps.engine.linkage import Linkage, is_cuda_soname
from pytest_cudadeps.engine.snapshot import Root, Snapshot

CHECK = "lazy"


@dataclass(frozen=True)
class LazyLibrary:
    """One library an opener dlopens by name.

    ``tries`` are the names dlopen is called with, in order, as templates: ``{v0}``, ``{v1}``,
    ``{v2}`` are the parts of the opener's distribution version (nvidia-cudnn-cu13 9.24.0.43:
    9, 24, 0), ``{cuda}`` the CUDA major of the root's build.  ``same_wheel``: the opener's own
    wheel ships it; otherwise the wheel the root declares for that soname does.
    """

    opener: str  # a regular expression on the opener's file name
    tries: tuple[str, ...]
    same_wheel: bool
    source: str
    seen_as: str  # what the user sees when it is missing; {tried} is the names tried

    def names(self, version: str | None, cuda: str | None) -> tuple[str, ...]:
        """The names tried, for this opener's version; a template whose fields are unknown is left out."""
        parts = [p for p in (version or "").split(".") if p.isdigit()]
        fields = {f"v{i}": part for i, part in enumerate(parts)}
        if cuda:
            fields["cuda"] = cuda.split(".")[0]
        names = []
        for template in self.tries:
            try:
                names.append(template.format(**fields))
            except KeyError:
                continue
        return tuple(names)


def _cudnn(name: str, opener: str, source: str) -> LazyLibrary:
    # libcudnn.so.9 formats "%s.%d.%d.%d", "%s.%d.%d", "%s.%d" on the base name, then the bare name
    return LazyLibrary(opener, (f"{name}.so.{{v0}}.{{v1}}.{{v2}}", f"{name}.so.{{v0}}.{{v1}}", f"{name}.so.{{v0}}",
                                f"{name}.so"), True, source, "the first cuDNN call that needs it fails with "
                                                             "`Unable to load any of {{{tried}}}`")


_CUDNN_MAIN = r"libcudnn\.so\.9$"
_CUDNN_GRAPH = r"libcudnn_graph\.so\.9$"
_CUDNN_SOURCE = ("strings of libcudnn.so.9 (nvidia-cudnn-cu13 9.24.0.43): \"%s.%d.%d.%d\", \"%s.%d.%d\", \"%s.%d\" "
                 "and the base names; not in its DT_NEEDED")
_GRAPH_SOURCE = ("strings of libcudnn_graph.so.9 (nvidia-cudnn-cu13 9.24.0.43): the base names and "
                 "\"Unable to load any of {%s, %s, %s, %s}\"")
_NVRTC = r"libnvrtc\.so\.\d+$"

# Who opens what by name.  Sources: `strings` and `readelf -d` of the libraries in torch 2.14.1's venv
# (nvidia-cudnn-cu13 9.24.0.43, nvidia-cuda-nvrtc 13.0.88, nvidia-cublas 13.1.1.3, nvidia-cufft 12.0.0.61,
# nvidia-cusparselt-cu13 0.8.1), cross-checked with each wheel's RECORD: a name in a library's strings
# that is not in its DT_NEEDED is opened with dlopen.  Entries for optional plugins and the driver are
# in OPTIONAL below, not checked.
LAZY: tuple[LazyLibrary, ...] = (
    *(_cudnn(f"libcudnn_{part}", _CUDNN_MAIN, _CUDNN_SOURCE) for part in ("graph", "ops", "cnn", "adv", "ext")),
    *(_cudnn(f"libcudnn_{part}", _CUDNN_GRAPH, _GRAPH_SOURCE)
      for part in ("engines_precompiled", "engines_runtime_compiled", "engines_tensor_ir", "heuristic")),
    LazyLibrary(_CUDNN_GRAPH, ("libnvrtc.so.{cuda}",), False,
                "strings of libcudnn_graph.so.9: \"libnvrtc.so.%d\", \"Could not open libnvrtc for runtime linking\"",
                "`Could not open libnvrtc for runtime linking` (runtime-compiled cuDNN engines)"),
    *(LazyLibrary(rf"libcudnn_{part}\.so\.9$", ("libcublasLt.so.{cuda}",), False,
                  f"strings of libcudnn_{part}.so.9: \"libcublasLt.so.13\"; not in its DT_NEEDED",
                  "cuDNN's matmul engines fail to load cuBLASLt")
      for part in ("adv", "engines_precompiled")),
    LazyLibrary(_NVRTC, ("libnvrtc-builtins.so.{v0}.{v1}",), True,
                "strings of libnvrtc.so.13 (nvidia-cuda-nvrtc 13.0.88): \"libnvrtc-builtins.so.13.0\" and the "
                "__nvrtc_builtins__13_0_* entry points it looks up; nvrtc has no RUNPATH (its loader's RPATH applies)",
                "`nvrtc: error: failed to open libnvrtc-builtins.so.13.0` at the first jit compile"),
    LazyLibrary(r"libcublasLt\.so\.\d+$", ("libnvrtc.so.{cuda}",), False,
                "strings of libcublasLt.so.13 (nvidia-cublas 13.1.1.3): \"libnvrtc.so.13\"; not in its DT_NEEDED",
                "cuBLASLt's runtime-compiled kernels fail"),
    *(LazyLibrary(r"libcufft\.so\.\d+$", (f"{name}.so.{{cuda}}",), False,
                  f"strings of libcufft.so.12 (nvidia-cufft 12.0.0.61): \"{name}.so.13\"; not in its DT_NEEDED",
                  "cuFFT's LTO callbacks and runtime-compiled kernels fail")
      for name in ("libnvrtc", "libnvJitLink")),
    LazyLibrary(r"libcusparseLt\.so\.\d+$", ("libnvrtc.so.{cuda}",), False,
                "strings of libcusparseLt.so.0 (nvidia-cusparselt-cu13 0.8.1): \"libnvrtc.so.13\"",
                "cuSPARSELt's runtime-compiled kernels fail"),
)

# Opened by name but optional, or the driver's: documented, never an item (a plugin NCCL or NVSHMEM
# goes on without, and the driver items cover libcuda and NVML).
OPTIONAL: tuple[tuple[str, str, str], ...] = (
    ("libnccl.so.2", "libnccl-net.so, libnccl-gin.so, libnccl-rma.so", "NCCL network plugins (NCCL_NET_PLUGIN)"),
    ("libnccl.so.2", "libibverbs.so.1, libmlx5.so.1, libgdrapi.so", "InfiniBand and GPUDirect RDMA (system)"),
    ("libnvshmem_host.so.3", "nvshmem_bootstrap_*.so.3, nvshmem_transport_*.so.3", "NVSHMEM bootstrap/transports"),
    ("libcufile.so.0", "libcufile_rdma.so.1", "GPUDirect Storage over RDMA"),
    ("libcupti.so.13", "libnvperf_host.so", "range profiling"),
    ("libnvJitLink.so.13", "libnvidia-tileiras.so.1", "the driver's Tile IR compiler"),
    ("libc10_cuda.so, libtorch_cuda.so, libnccl.so.2", "libnvidia-ml.so.1, libcuda.so.1", "the driver"),
    # strings of torch/lib/libtorch_cuda.so: "libtorch_cuda_linalg.so", "Failed to resolve
    # at_cuda_getCurrentCUDASolverDnHandle from libtorch_cuda_linalg.so"; it sits beside its opener
    # (DT_RPATH $ORIGIN) and the linkage walk already follows it as one of torch's own objects.
    ("libtorch_cuda.so", "libtorch_cuda_linalg.so", "torch's linear algebra on CUDA (checked by linkage[...])"),
)


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


def _ships(snapshot: Snapshot, owner: Distribution | None, names: tuple[str, ...]) -> bool:
    """Whether the opener's wheel lists one of the names in its RECORD: a build without the library
    (torch linked without lazy linalg) never opens it.  An opener of no wheel is left out: its
    ``linkage[...]`` item already fails, as a library found outside the wheel that declares it."""
    if owner is None:
        return False
    return any(dist.key == owner.key for name in names for _, dist in snapshot.owners.files_named(name))


def _model(snapshot: Snapshot, linkage: Linkage) -> LoaderModel:
    """The process after the root's import, as the walk left it (nothing is read or resolved again)."""
    env = snapshot.env
    model = LoaderModel.for_this_process(
        use_cache=not snapshot.settings.no_ld_cache,
        descend=lambda path, soname: is_cuda_soname(soname) or any(loc in path.parents for loc in env.paths))
    model.infos.update(linkage.infos)
    model.loaded.update(linkage.loaded)
    model.loader_of.update(linkage.loader_of)
    model.preloaded.update(linkage.preloaded)
    return model


def lazy_resolutions(snapshot: Snapshot, root: Root) -> list[LazyResolution]:
    """Every table entry whose opener the root's process maps, resolved as dlopen from the opener would
    (once per run and root: kept in the snapshot)."""
    linkage = root.linkage
    if linkage is None:
        return []
    if root.key in snapshot.lazy:
        return snapshot.lazy[root.key]
    model = _model(snapshot, linkage)
    found: list[LazyResolution] = []
    for entry in LAZY:
        opened = [lazy.path for lazy in found if lazy.path is not None]
        for opener in _openers(linkage, opened, entry.opener):
            owned = snapshot.owners.of(opener)
            owner = owned[0][0] if owned else None
            tried = entry.names(owner.version if owner else None, root.cuda)
            if not tried or (entry.same_wheel and not _ships(snapshot, owner, tried)):
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
    snapshot.lazy[root.key] = found
    return found


def _expected_owner(snapshot: Snapshot, root: Root, lazy: LazyResolution) -> str | None:
    """The distribution that must own the file: the opener's, or the one the root declares for the soname."""
    if lazy.entry.same_wheel:
        return lazy.opener_owner.key if lazy.opener_owner else None
    provision = snapshot.resolver(root).provision(lazy.soname, lazy.path)
    return provision.key if provision else None


def _fix(snapshot: Snapshot, root: Root, lazy: LazyResolution) -> str:
    if lazy.entry.same_wheel and lazy.opener_owner is not None:
        owner = lazy.opener_owner
        return reinstall_command(root.dist.installer, f"{owner.name}=={owner.version}")
    return snapshot.resolver(root).fix(lazy.soname, None)


def lazy_finding(snapshot: Snapshot, root: Root, lazy: LazyResolution) -> Finding:
    """``lazy[ROOT>OPENER>SONAME]``: found where its opener looks, in the wheel it must come from."""
    subject = f"{root.key}>{lazy.opener.name}>{lazy.soname}"
    opener = f"{lazy.opener.name} ({lazy.opener})"
    fix = _fix(snapshot, root, lazy)
    if lazy.resolution is None or lazy.path is None:
        return failed(
            CHECK, subject,
            f"{lazy.soname} is not where {lazy.opener.name} looks when it opens it at run time: "
            f"{lazy.entry.seen_as.format(tried=', '.join(lazy.tried))}",
            f"opened by: {opener}, trying {', '.join(lazy.tried)}",
            f"searched: {searched_text(Resolution(lazy.soname, lazy.opener, None, Via(Step.NOT_FOUND), lazy.searched))}",
            fix=fix, source=lazy.entry.source,
        )
    expected = _expected_owner(snapshot, root, lazy)
    owners = snapshot.owners.of(lazy.path)
    owner = owners[0][0] if owners else None
    via = lazy.resolution.via
    if expected is not None and expected not in {d.key for d, _ in owners}:
        real = lazy.path.resolve()
        also = f" (the file is {real.name})" if real.name != lazy.path.name else ""
        whose = f"owned by {owner}" if owner else "owned by no installed distribution"
        fix = (f"remove {lazy.path.parent} from LD_LIBRARY_PATH" if via.step is Step.LD_LIBRARY_PATH else fix)
        return failed(
            CHECK, subject,
            f"{lazy.soname} resolves to {lazy.path}{also} (via {via}, {whose}), not to {expected}'s copy, which "
            f"{lazy.opener.name} is built to open: a library of another version or build",
            f"opened by: {opener}, trying {', '.join(lazy.tried)}",
            fix=fix, path=str(lazy.path), source=lazy.entry.source,
        )
    whose = str(owner) if owner else "no distribution"
    return passed(CHECK, subject, f"{lazy.soname} -> {lazy.path} ({whose}, opened by {lazy.opener.name}, via {via})",
                  path=str(lazy.path), source=lazy.entry.source)


def lazy_findings(snapshot: Snapshot) -> list[Finding]:
    """One ``lazy[ROOT>OPENER>SONAME]`` item per table entry whose opener each root's process maps."""
    return [lazy_finding(snapshot, root, lazy) for root in snapshot.roots for lazy in lazy_resolutions(snapshot, root)]


def lazy_load_targets(snapshot: Snapshot, root: Root) -> list[tuple[str, Path | None, str]]:
    """(soname, predicted path, fix) for each library ``root``'s libraries open lazily: what the load probe opens.

    The predicted path is None where nothing would be found: the static ``lazy[...]`` item says so,
    and the probe skips it (a bare name opened from the probe would search another object's paths).
    The probe opens them after the root's own steps, in the process the root's import made.
    """
    return [(lazy.soname, lazy.path, _fix(snapshot, root, lazy)) for lazy in lazy_resolutions(snapshot, root)]
