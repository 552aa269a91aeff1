"""Companion packages of torch: the release of a companion that matches a torch version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cudadeps.engine.companions import Companion, Extension, built_for_torch, matching_release
from pytest_cudadeps.engine.distributions import scan
from tests.support import sitebuilder as sb
from tests.support.bounds import watchdog


@pytest.mark.parametrize(("name", "torch", "expected"), [
    ("torchvision", "2.14.1", "torchvision==0.29.*"),
    ("torchvision", "2.13.0", "torchvision==0.28.*"),
    ("torchaudio", "2.14.1", "torchaudio==2.14.*"),
    ("xformers", "2.14.1", None),
])
def test_matching_release(name: str, torch: str, expected: str | None, tmp_path: Path) -> None:
    site = sb.build(tmp_path / "s", [sb.Dist(name, "0.1")])
    dist = scan([site]).get(name)
    assert dist is not None
    assert matching_release(dist, torch) == expected


@pytest.mark.parametrize("kind", ["fifo", "deep"])
def test_a_build_record_that_is_no_file_or_nests_past_the_limit_is_no_record(tmp_path: Path, kind: str) -> None:
    """xformers' cpp_lib.json as a FIFO (a plain read_text waited for a writer forever) or nested 100,000 deep."""
    site = sb.build(tmp_path / "s", [sb.Dist("xformers", "0.0.34")])
    (site / "xformers").mkdir()
    if kind == "fifo":
        os.mkfifo(site / "xformers" / "cpp_lib.json")
    else:
        (site / "xformers" / "cpp_lib.json").write_text("[" * 100_000 + "]" * 100_000)
    dist = scan([site]).get("xformers")
    assert dist is not None
    companion = Companion(dist, (Extension(site / "xformers" / "_C.so", ()),))
    with watchdog():
        assert built_for_torch(companion) is None
