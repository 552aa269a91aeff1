"""The session's items on broken trees, through the plugin (pytester): a damaged library in torch/lib is a failing
item, exit status 1, never an INTERNALERROR (3).  The tree is tests/support/linkage_tree.py's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.linkage_tree import Libs, build_libs, tree


@pytest.fixture(scope="module")
def libs(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> Libs:
    return build_libs(gcc, tmp_path_factory.mktemp("cuda"))


def _truncated(libs: Libs, target: Path) -> None:
    target.write_bytes(libs.cudart.read_bytes()[:100])


def _zero_byte(libs: Libs, target: Path) -> None:
    target.write_bytes(b"")


def _not_elf(libs: Libs, target: Path) -> None:
    target.write_text("INPUT(libtorch_cpu.so)\n" * 8)


def _wrong_arch(libs: Libs, target: Path) -> None:
    data = bytearray(libs.cublas.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    target.write_bytes(bytes(data))


def _symlink_loop(libs: Libs, target: Path) -> None:
    other = target.with_name("libloop_b.so")
    target.symlink_to(other.name)
    other.symlink_to(target.name)


@pytest.mark.parametrize("damage", [_truncated, _zero_byte, _not_elf, _wrong_arch, _symlink_loop],
                         ids=["truncated", "zero-byte", "non-elf", "wrong-arch", "symlink-loop"])
def test_plugin_fails_cleanly_on_a_broken_library_in_torch_lib(pytester: pytest.Pytester, libs: Libs,
                                                              damage: Callable[[Libs, Path], None]) -> None:
    site = tree(pytester.path / "site", libs)
    broken = site / "torch" / "lib" / "libbroken.so"
    damage(libs, broken)
    result = pytester.runpytest_inprocess("-W", "ignore::pytest.PytestAssertRewriteWarning", "-p", "no:cacheprovider",
                                          "--cuda-deps-only", "--cuda-deps-no-probes", f"--cuda-deps-path={site}")
    output = result.stdout.str()
    assert "INTERNALERROR" not in output
    assert result.ret == 1, output
    failed = [line for line in result.outlines if line.startswith("FAILED cudadeps::")]
    assert any("libbroken.so" in line for line in failed), output
