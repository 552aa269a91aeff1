"""The static findings of a snapshot, all of them: the security items are among them (the others are each check's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.static import static_findings
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support.cudart_tree import ITEMS, tree


@pytest.fixture
def site(gcc: str, tmp_path: Path) -> Path:
    return tree(tmp_path, gcc)


def test_the_items_are_part_of_the_static_findings(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site.parent)
    names = [f.name for f in static_findings(take_snapshot(Settings(paths=(str(site),), no_ld_cache=True)))]
    assert [name for name in names if name.startswith("security[")] == ITEMS
