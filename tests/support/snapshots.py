"""Snapshots made by hand: a torch site whose linkage is given, so that the probe items can be listed and run
with the children replaced (no ELF walk, no loader)."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Pending
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.build import read_build
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.ldso import Step, Via
from pytest_cudadeps.engine.linkage import Linkage, ResolvedLibrary
from pytest_cudadeps.engine.owners import Owners
from pytest_cudadeps.engine.requirements import Closures
from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.probe_items import probe_checks
from pytest_cudadeps.probes.children import Probes

CU13_LIB = "nvidia/cu13/lib"


def torch_snapshot(site: Path, settings: Settings | None = None) -> Snapshot:
    """A snapshot of ``site`` whose torch linkage is given here, as the walk would have found it."""
    env = scan([site])
    torch = env.get("torch")
    assert torch is not None
    cu13 = site / CU13_LIB
    libraries = (
        ResolvedLibrary("libc.so.6", Path("/lib/x86_64-linux-gnu/libc.so.6"), Via(Step.LD_SO_CACHE), (), None),
        ResolvedLibrary("libcublas.so.13", cu13 / "libcublas.so.13", Via(Step.RPATH), (), "nvidia-cublas"),
        ResolvedLibrary("libcuda.so.1", None, Via(Step.NOT_FOUND), (), None),
        ResolvedLibrary("libcudart.so.13", cu13 / "libcudart.so.13", Via(Step.RPATH), (), "nvidia-cuda-runtime"),
    )
    objects = (site / "torch/lib/libtorch_global_deps.so", site / "torch/lib/libtorch_cuda.so")
    found = Closures(env).of(torch)
    root = Root(torch, found, read_build(env, torch), Linkage(torch, objects, libraries), found.by_key())
    return Snapshot(settings or Settings(paths=(str(site),)), env, Owners(env), (root,))


def runtime_checks(snapshot: Snapshot) -> dict[str, Pending]:
    """The probe items of the snapshot, their children not started (each starts when an item first asks)."""
    return probe_checks(snapshot, Probes(snapshot))
