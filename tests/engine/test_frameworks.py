"""Other CUDA frameworks: which distributions are roots because their ELF files need CUDA (onnxruntime-gpu 1.31.1's
layout, tests/support/onnxruntime.py), and which are torch's companions."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.frameworks import installed_frameworks
from pytest_cudadeps.engine.snapshot import Snapshot, take_snapshot
from pytest_cudadeps.tables.frameworks import framework_for
from tests.support import sitebuilder as sb
from tests.support.build import build_so
from tests.support.jax import jax_dists, jax_tree
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
    # onnxruntime-gpu is in the frameworks' table: a root from its name alone, without the ELF view
    assert [r.key for r in take_snapshot(Settings(paths=(str(site),)), with_linkage=False).roots] == ["torch",
                                                                                                     "onnxruntime-gpu"]


# --- frameworks as roots (jax[cuda13] 0.10.2's layout, tests/support/jax.py) -------------------------


def _jax_snapshot(site: Path, *roots: str) -> Snapshot:
    return take_snapshot(Settings(paths=(str(site),), no_ld_cache=True, roots=roots))


def test_jax_is_the_root_with_its_cuda_extra_and_no_cuda_wheel_is_one(tmp_path: Path, gcc: str) -> None:
    snapshot = _jax_snapshot(jax_tree(tmp_path, gcc))
    assert [(r.key, r.asked, r.cuda) for r in snapshot.roots] == [("jax", ("cuda13",), "13")]
    jax = snapshot.roots[0]
    assert "nvidia-cudnn-cu13" in jax.demands  # the extra is required: its wheels are the root's demands
    assert jax.demands["nvidia-cudnn-cu13"][0].chain[0] == "jax[cuda13] 0.10.2"
    own = [lazy for lazy in jax.lazy if lazy.entry.label == "jax_plugins.xla_cuda13"]
    assert [lazy.soname for lazy in own] == [lib.soname for lib in framework_for("jax").libraries]  # type: ignore[union-attr]
    assert all(lazy.path is not None for lazy in own)
    assert own[-1].path == site_of(snapshot) / "nvidia/cudnn/lib/libcudnn.so.9"


def site_of(snapshot: Snapshot) -> Path:
    return snapshot.env.paths[0]


def test_jax_without_cudnn_has_nothing_where_the_plugin_looks(tmp_path: Path, gcc: str) -> None:
    snapshot = _jax_snapshot(jax_tree(tmp_path, gcc, omit=("nvidia-cudnn-cu13",)))
    cudnn = next(lazy for lazy in snapshot.roots[0].lazy if lazy.soname == "libcudnn.so.9")
    assert cudnn.path is None
    assert [str(place.folder) for place in cudnn.searched][:1] == [str(site_of(snapshot) / "nvidia/cudnn/lib")]


def test_a_root_named_with_extras_is_that_distribution_with_those_extras(tmp_path: Path, gcc: str) -> None:
    site = jax_tree(tmp_path, gcc)
    named = _jax_snapshot(site, "jax[cuda13]")
    assert ([(r.key, r.asked) for r in named.roots], named.unknown_roots) == ([("jax", ("cuda13",))], ())
    plain = take_snapshot(Settings(paths=(str(site),), roots=("jax",)), with_linkage=False)
    assert [(r.key, r.asked) for r in plain.roots] == [("jax", ())]
    assert "nvidia-cudnn-cu13" not in plain.roots[0].demands
    missing = take_snapshot(Settings(paths=(str(site),), roots=("flax[all]",)), with_linkage=False)
    assert missing.unknown_roots == ("flax[all]",)


def test_cuda_wheels_are_roots_only_when_nothing_else_is(tmp_path: Path) -> None:
    cudnn = sb.Dist("nvidia-cudnn-cu13", "9.28.1.4", ("nvidia-cublas",))
    alone = sb.build(tmp_path / "alone", [cudnn, sb.Dist("nvidia-cublas", "13.10.0.20")])
    assert [r.key for r in take_snapshot(Settings(paths=(str(alone),)), with_linkage=False).roots] == ["nvidia-cudnn-cu13"]
    beside = sb.build(tmp_path / "beside", [cudnn, sb.Dist("nvidia-cublas", "13.10.0.20"),
                                            sb.Dist("app", "1.0", ("nvidia-cublas",))])
    assert [r.key for r in take_snapshot(Settings(paths=(str(beside),)), with_linkage=False).roots] == ["app"]


def test_a_framework_is_recognised_only_with_its_build_installed(tmp_path: Path) -> None:
    site = sb.build(tmp_path / "site", jax_dists())
    assert list(installed_frameworks(scan([site]))) == ["jax"]
    cpu = sb.build(tmp_path / "cpu", [d for d in jax_dists() if d.key not in ("jax-cuda13-plugin", "jax-cuda13-pjrt")])
    assert installed_frameworks(scan([cpu])) == {}  # jax without its CUDA plugin: the CPU build
    numba12 = sb.build(tmp_path / "numba", [sb.Dist("numba-cuda", "0.30.4"), sb.Dist("cuda-bindings", "12.9.10")])
    assert installed_frameworks(scan([numba12])) == {}  # the table has numba-cuda's CUDA 13 row only


def test_bitsandbytes_picks_the_binary_for_torchs_cuda_as_its_cextension_does(tmp_path: Path) -> None:
    from pytest_cudadeps.engine.frameworks import picked_binary
    from pytest_cudadeps.tables.frameworks import AFTER_TORCH

    files = {f"bitsandbytes/libbitsandbytes_cuda{v}.so": "" for v in (118, 121, 128, 130, 132)}
    site = sb.build(tmp_path / "site", [sb.Dist("bitsandbytes", "0.50.2", ("torch<3,>=2.4",), files=files)])
    bnb = scan([site]).get("bitsandbytes")
    assert bnb is not None
    picked = {cuda: picked_binary(bnb, AFTER_TORCH[0], cuda, None)[0].name for cuda in ("13.0", "13.1", "12.6", "12.0")}
    assert picked == {"13.0": "libbitsandbytes_cuda130.so", "13.1": "libbitsandbytes_cuda130.so",
                      "12.6": "libbitsandbytes_cuda121.so", "12.0": "libbitsandbytes_cuda121.so"}
    path, how = picked_binary(bnb, AFTER_TORCH[0], "13.0", "131")
    assert (path.name, how) == ("libbitsandbytes_cuda131.so", "BNB_CUDA_VERSION=131")  # no fallback


def test_the_cuda12_builds_of_jax_and_cupy_are_framework_roots_with_their_own_folders(tmp_path: Path) -> None:
    site = sb.build(tmp_path / "site", [
        sb.Dist("jax", "0.10.2", ('jax-cuda12-plugin[with-cuda]<=0.10.2,>=0.10.2; extra == "cuda12"',), ("cuda12",)),
        sb.Dist("jax-cuda12-plugin", "0.10.2"), sb.Dist("cupy-cuda12x", "14.2.0",
                                                         ('cuda-toolkit[cublas]==12.*; extra == "ctk"',), ("ctk",))])
    found = installed_frameworks(scan([site]))
    assert {key: (fw.marker, fw.cuda, fw.extra) for key, fw in found.items()} == {
        "jax": ("jax-cuda12-plugin", "12", "cuda12"), "cupy-cuda12x": ("cupy-cuda12x", "12", "ctk")}
    jax = found["jax"]
    assert jax.opener == "jax_plugins/xla_cuda12/__init__.py"
    assert {lib.soname: lib.folders for lib in jax.libraries}["libcublas.so.12"] == ("nvidia/cublas/lib",)
    cupy = {lib.soname: lib.folders for lib in found["cupy-cuda12x"].libraries}
    assert cupy["libcusparse.so.12"] == ("nvidia/cu13/lib", "nvidia/cusparse/lib")  # cuda.pathfinder's order
    roots = take_snapshot(Settings(paths=(str(site),)), with_linkage=False).roots
    assert [(root.key, root.spec) for root in roots] == [("cupy-cuda12x", "cupy-cuda12x[ctk]"), ("jax", "jax[cuda12]")]
