"""One snapshot per run: the roots chosen (named or default), torch's build read once, the ELF view left out on
request; trees of real METADATA."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.build import Build
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support import sitebuilder as sb


def test_named_roots_and_those_not_installed(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    snapshot = take_snapshot(Settings(paths=(str(site),), roots=("torch", "not-installed", "nvidia-cusolver")),
                             with_linkage=False)
    assert [root.key for root in snapshot.roots] == ["nvidia-cusolver", "torch"]
    assert snapshot.unknown_roots == ("not-installed",)
    torch = snapshot.torch
    assert torch is not None
    assert torch.linkage is None  # without the ELF view
    assert isinstance(torch.build, Build)
    assert (torch.cuda, torch.build_source) == ("13.0", str(site / "torch" / "version.py"))
    cusolver = next(root for root in snapshot.roots if root.key == "nvidia-cusolver")
    assert (cusolver.build, cusolver.cuda) == (None, None)  # only torch's build is read


def test_a_cpu_torch_and_one_whose_build_cannot_be_read(tmp_path: Path) -> None:
    cpu = take_snapshot(Settings(paths=(str(sb.torch_cpu(tmp_path / "cpu")),)), with_linkage=False).torch
    assert cpu is not None
    assert cpu.cuda is None
    site = sb.torch_2_14_1(tmp_path / "site")
    (site / "torch" / "version.py").unlink()
    broken = take_snapshot(Settings(paths=(str(site),)), with_linkage=False).torch
    assert broken is not None
    assert broken.cuda is None
    assert broken.build_source == f"{site / 'torch' / 'version.py'} is missing"


def test_no_torch_means_no_torch_root(tmp_path: Path) -> None:
    site = sb.build(tmp_path / "site", [sb.Dist("cupy-cuda13x", "14.0.0", ("nvidia-cuda-runtime==13.*",))])
    snapshot = take_snapshot(Settings(paths=(str(site),)), with_linkage=False)
    assert snapshot.torch is None
    assert [root.key for root in snapshot.roots] == ["cupy-cuda13x"]
