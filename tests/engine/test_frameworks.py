"""Other CUDA frameworks: which distributions are roots because their ELF files need CUDA (onnxruntime-gpu 1.31.1's
layout, tests/support/onnxruntime.py), and which are torch's companions."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support import sitebuilder as sb
from tests.support.build import build_so
from tests.support.onnxruntime import CU13, lib, ort_tree
from tests.support.sitebuilder import add_to_record


def test_a_distribution_whose_elf_files_need_cuda_is_a_root_and_a_companion_is_not(tmp_path: Path, gcc: str) -> None:
    plain = sb.Dist("onnxruntime-gpu", "1.31.1", ("numpy",))  # its binaries need CUDA; its metadata says nothing
    site = ort_tree(tmp_path, gcc, ort=plain, extra=(sb.Dist("companion", "1.0", ("torch",)),))
    libc10 = lib(gcc, site / "torch/lib/libc10.so")
    ext = build_so(gcc, site / "companion/_C.so", "int c(void) { return 0; }\n", f"-L{libc10.parent}",
                   f"-L{site / CU13}", "-Wl,--no-as-needed", "-l:libc10.so", "-l:libcudart.so.13")
    add_to_record(site, "companion", [ext])
    roots = [root.key for root in take_snapshot(Settings(paths=(str(site),), no_ld_cache=True)).roots]
    assert roots == ["torch", "onnxruntime-gpu"]  # the companion runs in torch's process; companions.py checks it
    assert [r.key for r in take_snapshot(Settings(paths=(str(site),)), with_linkage=False).roots] == ["torch"]
