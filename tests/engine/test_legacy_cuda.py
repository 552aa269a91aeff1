"""Imports of the modules cuda-bindings 13 removed, read from the .py files of the packages that require it."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.legacy_cuda import DEPTH, bindings_users, legacy_imports, legacy_module
from tests.support import sitebuilder as sb

CODE = """\
import os
from cuda import cudart, nvrtc as _nvrtc
from cuda import pathfinder
import cuda.cuda as driver
if os.environ.get("X"):
    from cuda.nvrtc import nvrtcVersion
"""


def test_the_removed_modules_are_found_in_the_files_of_a_package_that_requires_the_bindings(tmp_path: Path) -> None:
    deep = "legacy/a/b/c/deep.py"
    assert deep.count("/") > DEPTH
    site = sb.build(tmp_path / "site", [
        sb.Dist("legacy", "1.0", ("cuda-python>=12",), files={"legacy/__init__.py": CODE, deep: CODE}),
        sb.Dist("unrelated", "1.0", ("numpy",), files={"unrelated/__init__.py": CODE}),
        sb.Dist("cuda-python", "13.0.0"), sb.Dist("cuda-bindings", "13.5.0")])
    env = scan([site])
    assert [(d.key, named) for d, named in bindings_users(env)] == [("legacy", "cuda-python")]
    legacy = env.get("legacy")
    assert legacy is not None
    found = [(i.path.name, i.line, i.module, i.statement) for i in legacy_imports(legacy)]
    assert found == [
        ("__init__.py", 2, "cudart", "from cuda import cudart, nvrtc as _nvrtc"),
        ("__init__.py", 2, "nvrtc", "from cuda import cudart, nvrtc as _nvrtc"),
        ("__init__.py", 4, "cuda", "import cuda.cuda"),
        ("__init__.py", 6, "nvrtc", "from cuda.nvrtc"),
    ]  # pathfinder is no removed module; the file deeper than DEPTH folders is not read


def test_a_file_that_names_cuda_bindings_chooses_itself_and_the_old_module_is_found_where_installed(
        tmp_path: Path) -> None:
    guarded = "try:\n    from cuda.bindings import runtime\nexcept ImportError:\n    from cuda import cudart\n"
    site = sb.build(tmp_path / "site", [sb.Dist("guarded", "1.0", ("cuda-bindings",), files={"guarded.py": guarded})])
    dist = scan([site]).get("guarded")
    assert dist is not None
    assert legacy_imports(dist) == []
    assert legacy_module((site,), "cudart") is None
    extension = site / "cuda" / "cudart.cpython-311-x86_64-linux-gnu.so"  # cuda-bindings 12.9.10's
    extension.parent.mkdir()
    extension.write_bytes(b"\x7fELF")
    assert legacy_module((site,), "cudart") == extension
    assert legacy_module((site,), "nvrtc") is None
