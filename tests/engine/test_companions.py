"""Companion packages of torch: the release of a companion that matches a torch version."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.engine.companions import matching_release
from pytest_cudadeps.engine.distributions import scan
from tests.support import sitebuilder as sb


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
