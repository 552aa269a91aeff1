"""The plan of a run: the children start at collection, before any item runs, when asked to; the lazily opened
libraries are resolved once per run, for the static lazy[...] items and the load probe's steps alike."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine import lazy
from pytest_cudadeps.engine.distributions import Environment
from pytest_cudadeps.engine.ldso import LoaderModel
from pytest_cudadeps.engine.linkage import Linkage
from pytest_cudadeps.plan import collect_checks, plan_checks
from pytest_cudadeps.probes import children as probing
from pytest_cudadeps.probes.child.protocol import LibcudaAnswer, NvmlAnswer
from pytest_cudadeps.probes.driver import DriverInfo
from pytest_cudadeps.probes.load import LoadStep
from tests.support import sitebuilder as sb
from tests.support.cudnn import cudnn_tree


def test_children_start_at_collection_before_any_item_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    (site / "torch/lib").mkdir()
    (site / "torch/lib/libtorch_cuda.so").write_bytes(b"")
    asked = threading.Event()

    def probe_torch(steps: list[LoadStep], **kwargs: object) -> object:
        asked.set()
        raise RuntimeError("only the start matters")

    monkeypatch.setattr(probing, "probe_torch", probe_torch)
    monkeypatch.setattr(probing, "probe_driver", lambda **kwargs: DriverInfo(LibcudaAnswer(error="none"), NvmlAnswer()))
    items = collect_checks(Settings(paths=(str(site),), no_ld_cache=True), start_probes=True)
    assert asked.wait(30), "the torch child did not start at collection"
    assert "smoke[matmul]" in items
    asked.clear()
    collect_checks(Settings(paths=(str(site),), no_ld_cache=True))  # without start_probes: nothing runs ahead
    assert not asked.wait(1)


def test_the_lazy_resolutions_are_worked_out_once_per_run(tmp_path: Path, gcc: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The static lazy[...] items and the load probe's steps ask the same question: one answer per run and root."""
    site = cudnn_tree(tmp_path, gcc)
    models: list[Linkage] = []
    real = lazy._model

    def counted(env: Environment, linkage: Linkage, use_cache: bool) -> LoaderModel:
        models.append(linkage)
        return real(env, linkage, use_cache)

    monkeypatch.setattr(lazy, "_model", counted)
    items = plan_checks(Settings(paths=(str(site),), no_ld_cache=True)).items  # probes on: load steps planned too
    assert "load[libcudnn_cnn.so.9]" in items
    assert any(name.startswith("lazy[") for name in items)
    assert len(models) == 1
