"""The linkage walk: which objects of a root it starts from (the tree is tests/support/linkage_tree.py's).

What the linkage check says of the libraries it resolves is tests/checks/test_linkage.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.linkage import root_objects
from tests.support.linkage_tree import Libs, build_libs, tree


@pytest.fixture(scope="module")
def libs(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> Libs:
    return build_libs(gcc, tmp_path_factory.mktemp("cuda"))


def test_root_objects_start_with_global_deps_then_the_extension(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs)
    env = scan([site])
    torch = env.get("torch")
    assert torch is not None
    assert root_objects(env, torch) == (site / "torch/lib/libtorch_global_deps.so", site / "torch/_C.so")
