"""The children of one run (Probes): each probe started once, when an item first needs it, with the run's
settings; and what a load child is asked to open (the libraries a root's libraries open lazily included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot
from pytest_cudadeps.probes import children as probing
from pytest_cudadeps.probes.child.protocol import GpuAnswer, LibcudaAnswer, Loaded, NvmlAnswer
from pytest_cudadeps.probes.children import lazy_load_targets
from pytest_cudadeps.probes.driver import DriverInfo
from pytest_cudadeps.probes.load import LoadResult, LoadStep
from pytest_cudadeps.probes.runner import ChildRun
from pytest_cudadeps.probes.torch import SmokeRun, TorchRun
from tests.support import sitebuilder as sb
from tests.support.cudnn import CUDNN, cudnn_tree
from tests.support.snapshots import CU13_LIB, runtime_checks, torch_snapshot


def test_runtime_checks_run_each_probe_once_and_only_when_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    asked: list[dict[str, object]] = []

    def probe_driver(**kwargs: object) -> DriverInfo:
        asked.append(kwargs)
        return DriverInfo(LibcudaAnswer(path="/x/libcuda.so.1", cu_init=0, cuda_version=13000),
                          NvmlAnswer(driver="580.65.06", cuda_version=13000,
                                     gpus=(GpuAnswer(0, "NVIDIA H100 80GB HBM3", (9, 0), None, "off"),)))

    def probe_torch(steps: list[LoadStep], **kwargs: object) -> TorchRun:
        loaded.append([step.name for step in steps])
        loads: dict[str, LoadResult] = {step.name: Loaded(True, step.target, "opened") for step in steps}
        return TorchRun(loads, SmokeRun.from_run(ChildRun((), {}, (), True, 0, False, 7.0, 0.1)), {})

    loaded: list[list[str]] = []
    monkeypatch.setattr(probing, "probe_driver", probe_driver)
    monkeypatch.setattr(probing, "probe_torch", probe_torch)  # a CUDA torch's libraries load in the torch child
    checks = runtime_checks(torch_snapshot(site, Settings(paths=(str(site),), timeout=7.0, no_ld_cache=True)))
    assert asked == []
    assert loaded == []
    assert checks["load[libcudart.so.13]"]().outcome is Outcome.PASS
    assert checks["load[libcublas.so.13]"]().message == f"{site / CU13_LIB / 'libcublas.so.13'} (opened)"
    # one child run for all of them, torch's own libraries first
    assert loaded == [["torch-global-deps", "torch-cuda", "libcublas.so.13", "libcuda.so.1", "libcudart.so.13"]]
    checks["smoke[matmul]"]()
    assert len(loaded) == 1  # the same child answers the smoke items
    assert asked == []
    assert checks["driver[libcuda]"]().outcome is Outcome.PASS
    assert checks["driver[nvml]"]().outcome is Outcome.PASS
    compat = checks["driver[runtime-compat]"]()
    assert compat.outcome is Outcome.PASS
    assert "runs the CUDA 13.0 runtime" in compat.message
    assert len(asked) == 1
    assert asked[0]["timeout"] == 7.0
    assert asked[0]["inhibit_ld_cache"] is True
    assert asked[0]["cudart"] == site / CU13_LIB / "libcudart.so.13"  # the one the linkage resolved


def test_one_torch_child_serves_both_smoke_items_and_honours_the_ld_cache_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    asked: list[tuple[list[str], dict[str, object]]] = []

    def probe_torch(steps: list[LoadStep], **kwargs: object) -> object:
        asked.append(([step.name for step in steps], kwargs))
        raise RuntimeError("stop here: only the arguments matter")

    monkeypatch.setattr(probing, "probe_torch", probe_torch)
    monkeypatch.setattr(probing, "probe_driver", lambda **kwargs: DriverInfo(LibcudaAnswer(error="none"), NvmlAnswer()))
    checks = runtime_checks(torch_snapshot(site, Settings(paths=(str(site),), timeout=3.0, no_ld_cache=True)))
    for name in ("smoke[matmul]", "smoke[all-reduce]", "load[libcudart.so.13]"):
        with pytest.raises(RuntimeError, match="stop here"):
            checks[name]()
    # one torch child for the smoke and the load items: torch is imported once per run
    assert [(steps, kw["inhibit_ld_cache"], kw["timeout"]) for steps, kw in asked] == [
        (["torch-global-deps", "torch-cuda", "libcublas.so.13", "libcuda.so.1", "libcudart.so.13"], True, 3.0)]


def test_load_targets_carry_the_prediction_and_the_fix(tmp_path: Path, gcc: str) -> None:
    site = cudnn_tree(tmp_path, gcc)
    (site / CUDNN / "libcudnn_cnn.so.9").unlink()
    snapshot = take_snapshot(Settings(paths=(str(site),), no_ld_cache=True))
    assert snapshot.torch is not None
    targets = {name: (path, fix) for name, path, fix in lazy_load_targets(snapshot, snapshot.torch)}
    assert targets["libcudnn_ops.so.9"] == (site / CUDNN / "libcudnn_ops.so.9",
                                           "pip install --force-reinstall --no-deps 'nvidia-cudnn-cu13==9.24.0.43'")
    assert targets["libcudnn_cnn.so.9"][0] is None


def test_a_frameworks_own_libraries_load_first_and_its_libcudart_is_the_driver_childs(tmp_path: Path, gcc: str) -> None:
    from tests.support.jax import jax_tree

    site = jax_tree(tmp_path, gcc)
    snapshot = take_snapshot(Settings(paths=(str(site),), no_ld_cache=True))
    jax = snapshot.roots[0]
    steps = probing.load_steps(snapshot, jax, set())
    assert [step.soname for step in steps][:3] == ["libcudart.so.13", "libnvrtc.so.13", "libcublas.so.13"]  # jax's order
    assert steps[0].predicted == site / "nvidia/cu13/lib/libcudart.so.13"
    assert probing._cudart(snapshot) == site / "nvidia/cu13/lib/libcudart.so.13"
