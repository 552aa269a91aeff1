"""The cuda-bindings[DIST] items on sitebuilder trees: a package importing `from cuda import cudart` beside
cuda-bindings 13 (which has no cuda.cudart) fails with the pin of what it requires below 13."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.legacy_cuda import legacy_cuda_findings
from pytest_cudadeps.engine.distributions import scan
from tests.support import sitebuilder as sb


def _site(tmp_path: Path, bindings: str, requires: str = "cuda-python") -> Path:
    return sb.build(tmp_path / "site", [
        sb.Dist("legacy", "1.0", (requires,), files={"legacy/__init__.py": "from cuda import cudart\n"}),
        sb.Dist("cuda-bindings", bindings)])


def test_a_removed_module_fails_with_the_pin_below_13(tmp_path: Path) -> None:
    found = legacy_cuda_findings(scan([_site(tmp_path / "13", "13.5.0")]))
    assert [f.name for f in found] == ["cuda-bindings[legacy]"]
    assert found[0].outcome is Outcome.FAIL
    assert "`from cuda import cudart` (legacy/__init__.py:1), which cuda-bindings 13.5.0 no longer provides" in \
        found[0].message
    assert "cannot import name 'cudart' from 'cuda'" in found[0].message
    assert found[0].fix == "pip install 'cuda-python<13'"
    only_bindings = legacy_cuda_findings(scan([_site(tmp_path / "b", "13.5.0", "cuda-bindings>=12")]))
    assert only_bindings[0].fix == "pip install 'cuda-bindings<13'"


def test_the_module_cuda_bindings_12_still_ships_passes(tmp_path: Path) -> None:
    site = _site(tmp_path, "12.9.10")
    extension = site / "cuda" / "cudart.cpython-311-x86_64-linux-gnu.so"
    extension.parent.mkdir()
    extension.write_bytes(b"\x7fELF")
    found = legacy_cuda_findings(scan([site]))
    assert [f.outcome for f in found] == [Outcome.PASS]
    assert str(extension) in found[0].message
