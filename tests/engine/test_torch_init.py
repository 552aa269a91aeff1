"""torch's preload, read from the real ``torch/__init__.py`` of 2.14.1 and 2.7.1, and the linkage walk that follows it.

The data files are the functions of each release's ``torch/__init__.py`` that load its CUDA libraries,
cut from the installed wheels.  The walk is checked on a gcc-built tree where another
``libnvJitLink.so.13`` comes first on ``LD_LIBRARY_PATH``: ld.so alone would take it for libcusparse
(LD_LIBRARY_PATH comes before libcusparse's DT_RUNPATH), but torch 2.14.1 opens the wheel's copy by path
first, and ``/proc/self/maps`` after ``import torch`` shows the wheel's (pytorch/pytorch#138460).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.ldso import Step
from pytest_cudadeps.engine.linkage import analyze
from pytest_cudadeps.engine.torch_init import NO_PRELOAD, read_preload
from tests.support import sitebuilder as sb
from tests.support.build import build_so
from tests.support.linkage_tree import trimmed_init

INIT_2_14_1 = sb.DATA / "torch-2.14.1-init.py.txt"
INIT_2_7_1 = sb.DATA / "torch-2.7.1-init.py.txt"
CU13 = "nvidia/cu13/lib"


def package_with(tmp_path: Path, init: Path | str) -> Path:
    package = tmp_path / "torch"
    package.mkdir(parents=True, exist_ok=True)
    text = init.read_text() if isinstance(init, Path) else init
    (package / "__init__.py").write_text(text)
    return package


def test_torch_2_14_1_preloads_sixteen_libraries_whenever_a_libcudart_is_mapped(tmp_path: Path) -> None:
    preload = read_preload(package_with(tmp_path, INIT_2_14_1))
    assert preload.trigger == "libcudart.so"  # any copy: the wheel's or a system one
    assert preload.cu_folder  # nvidia/cu13/lib after nvidia/<folder>/lib
    assert len(preload.libraries) == 16
    assert preload.libraries[:2] == (("cublas", "libcublasLt.so.*[0-9]"), ("cublas", "libcublas.so.*[0-9]"))
    assert preload.libraries[-1] == ("cufile", "libcufile.so.*[0-9]")
    assert preload.strict == preload.libraries  # _preload_cuda_deps(err) takes the same list, strictly
    assert preload.source.endswith("__init__.py, _load_global_deps()")


def test_torch_2_7_1_preloads_nvrtc_and_nvjitlink_only_after_the_wheels_cudart(tmp_path: Path) -> None:
    preload = read_preload(package_with(tmp_path, INIT_2_7_1))
    assert preload.trigger == "nvidia/cuda_runtime/lib/libcudart.so"
    assert not preload.cu_folder
    assert preload.libraries == (("cuda_nvrtc", "libnvrtc.so.*[0-9]"), ("nvjitlink", "libnvJitLink.so.*[0-9]"))
    assert [folder for folder, _ in preload.strict] == [
        "cublas", "cudnn", "cuda_nvrtc", "cuda_runtime", "cuda_cupti", "cufft", "curand", "nvjitlink", "cusparse",
        "cusparselt", "cusolver", "nccl", "nvtx", "cufile"]  # cufile added for CUDA 12 and later


@pytest.mark.parametrize(("text", "reason"), [
    ("def _load_global_deps(:\n", "cannot be read"),
    ("x = 1\n", "has no _load_global_deps()"),
    ("def _load_global_deps():\n    pass\n", "preloads nothing this reader knows"),
])
def test_an_init_this_reader_does_not_know_preloads_nothing_and_says_why(tmp_path: Path, text: str, reason: str) -> None:
    preload = read_preload(package_with(tmp_path, text))
    assert (preload.trigger, preload.libraries) == (NO_PRELOAD.trigger, NO_PRELOAD.libraries)
    assert reason in preload.source


def test_a_library_is_looked_for_as_torch_globs_it(tmp_path: Path) -> None:
    preload = read_preload(package_with(tmp_path, INIT_2_14_1))
    first, second = tmp_path / "first", tmp_path / "second"
    for site, folder in ((first, "nvidia/cublas/lib"), (second, CU13)):
        (site / folder).mkdir(parents=True)
        (site / folder / "libcublasLt.so.13").write_bytes(b"")
    # the first sys.path entry with any hit wins, in nvidia/<folder>/lib, then nvidia/cu13/lib
    assert preload.paths([first, second], "13")[0] == first / "nvidia/cublas/lib/libcublasLt.so.13"
    assert preload.paths([second, first], "13")[0] == second / CU13 / "libcublasLt.so.13"
    assert preload.paths([second], None)[0] == "libcublasLt.so.*[0-9]"  # no major: cu13 is not looked in


# --- the walk ---------------------------------------------------------------------------------------


def _lib(gcc: str, target: Path, soname: str, source: str, *flags: str) -> Path:
    return build_so(gcc, target, source, f"-Wl,-soname,{soname}", *flags)


def torch_tree(site: Path, gcc: str, init: Path | str, *, nvjitlink: bool = True) -> Path:
    """torch 2.14.1 whose libtorch_global_deps needs libcudart and whose _C needs libcusparse, which needs
    libnvJitLink through its DT_RUNPATH $ORIGIN, as the wheels have it."""
    sb.build(site, [sb.torch_dist("2.14.1", "13.0", metadata_file=sb.DATA / "torch-2.14.1.METADATA"),
                    *sb.COMMON, *sb.CU13])
    (site / "torch" / "__init__.py").write_text(init.read_text() if isinstance(init, Path) else init)
    lib = site / CU13
    cudart = _lib(gcc, lib / "libcudart.so.13", "libcudart.so.13", "int cudart(void) { return 0; }\n")
    if nvjitlink:
        _lib(gcc, lib / "libnvJitLink.so.13", "libnvJitLink.so.13", "int jit(void) { return 0; }\n")
    else:
        _lib(gcc, site / "elsewhere" / "libnvJitLink.so.13", "libnvJitLink.so.13", "int jit(void) { return 0; }\n")
    link = lib if nvjitlink else site / "elsewhere"
    _lib(gcc, lib / "libcusparse.so.12", "libcusparse.so.12", "int jit(void);\nint sparse(void) { return jit(); }\n",
         f"-L{link}", "-l:libnvJitLink.so.13", "-Wl,--enable-new-dtags,-rpath,$ORIGIN")
    if not nvjitlink:
        shutil.rmtree(site / "elsewhere")
    rpath = "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../../nvidia/cu13/lib"
    build_so(gcc, site / "torch/lib/libtorch_global_deps.so", "int cudart(void);\nint g(void) { return cudart(); }\n",
             f"-L{lib}", "-l:libcudart.so.13", rpath)
    build_so(gcc, site / "torch/_C.so", "int sparse(void);\nint c(void) { return sparse(); }\n",
             f"-L{lib}", "-l:libcusparse.so.12", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../nvidia/cu13/lib")
    assert cudart.exists()
    return site


@pytest.fixture
def other_nvjitlink(gcc: str, tmp_path: Path) -> Path:
    """Another libnvJitLink.so.13, in a folder put first on LD_LIBRARY_PATH (a system CUDA's, a conda env's)."""
    return _lib(gcc, tmp_path / "other" / "libnvJitLink.so.13", "libnvJitLink.so.13", "int jit(void) { return 1; }\n")


def walk(site: Path, ld_library_path: str = "") -> dict[str, tuple[Path | None, str]]:
    env = scan([site])
    torch = env.get("torch")
    assert torch is not None
    linkage = analyze(env, torch, use_ld_cache=False, ld_library_path=ld_library_path, ld_preload="", cuda="13.0")
    return {lib.soname: (lib.path, str(lib.via)) for lib in linkage.libraries}


def test_torch_2_14_1_opens_the_wheels_nvjitlink_before_ld_library_path_is_asked(
        gcc: str, tmp_path: Path, other_nvjitlink: Path) -> None:
    site = torch_tree(tmp_path / "site", gcc, INIT_2_14_1)
    found = walk(site, str(other_nvjitlink.parent))
    assert found["libnvJitLink.so.13"] == (site / CU13 / "libnvJitLink.so.13",
                                           "the preload in torch/__init__.py (_load_global_deps())")
    assert found["libcudart.so.13"] == (site / CU13 / "libcudart.so.13", "DT_RPATH of libtorch_global_deps.so")


def test_without_torchs_preload_ld_library_path_wins_as_ld_so_alone_decides(
        gcc: str, tmp_path: Path, other_nvjitlink: Path) -> None:
    # torch 2.7.1's trigger is the wheel's nvidia/cuda_runtime/lib/libcudart.so, which a cu13 layout never maps
    for init in (INIT_2_7_1, "x = 1\n"):
        site = torch_tree(tmp_path / f"site-{len(str(init))}", gcc, init)
        assert walk(site, str(other_nvjitlink.parent))["libnvJitLink.so.13"] == (other_nvjitlink,
                                                                                 "LD_LIBRARY_PATH")


def test_a_preload_whose_dependency_is_missing_ends_the_preload(gcc: str, tmp_path: Path) -> None:
    """libcusparse's preload fails (no libnvJitLink anywhere): torch swallows the error, and libcusparse is then
    resolved by the loader when torch._C needs it (and not found: the item says so)."""
    site = torch_tree(tmp_path / "site", gcc, INIT_2_14_1, nvjitlink=False)
    env = scan([site])
    torch = env.get("torch")
    assert torch is not None
    linkage = analyze(env, torch, use_ld_cache=False, ld_library_path="", ld_preload="", cuda="13.0")
    assert site / CU13 / "libcudart.so.13" in linkage.import_preload
    assert site / CU13 / "libcusparse.so.12" not in linkage.import_preload
    cusparse = linkage.library("libcusparse.so.12")
    assert cusparse is not None
    assert cusparse.via.step is Step.RPATH
    nvjitlink = linkage.library("libnvJitLink.so.13")
    assert nvjitlink is not None
    assert nvjitlink.path is None


# --- the nvidia namespace split across sys.path entries ------------------------------------------------


def split_runtime(site: Path, other: Path) -> Path:
    """nvidia-cuda-runtime in another site folder: its dist-info there, its libcudart in other/nvidia/cu13/lib."""
    (info,) = site.glob("nvidia_cuda_runtime-*.dist-info")
    (other / CU13).mkdir(parents=True)
    shutil.move(str(info), str(other / info.name))
    shutil.move(str(site / CU13 / "libcudart.so.13"), str(other / CU13 / "libcudart.so.13"))
    return other / CU13 / "libcudart.so.13"


STRICT = (("cuda_runtime", "libcudart.so.*[0-9]"), ("nvjitlink", "libnvJitLink.so.*[0-9]"),
          ("cusparse", "libcusparse.so.*[0-9]"))


def test_a_wheel_in_another_sys_path_entry_is_found_by_torchs_strict_preload(gcc: str, tmp_path: Path) -> None:
    """nvidia/cu13 split across two site folders: libtorch_global_deps' DT_RPATH ($ORIGIN/../../nvidia/cu13/lib)
    misses libcudart, its dlopen fails, and torch's strict preload globs every sys.path entry, opens the other
    folder's copy by path and loads libtorch_global_deps again (``import torch`` works).  Before: the library was
    found "via not found", the first failed lookup, and libtorch_global_deps was never loaded again."""
    site = torch_tree(tmp_path / "site", gcc, trimmed_init(*STRICT))
    cudart = split_runtime(site, tmp_path / "other")
    env = scan([site, tmp_path / "other"])
    torch = env.get("torch")
    assert torch is not None
    linkage = analyze(env, torch, use_ld_cache=False, ld_library_path="", ld_preload="", cuda="13.0")
    found = linkage.library("libcudart.so.13")
    assert found is not None
    assert (found.path, str(found.via), found.owner) == (
        cudart, "the preload in torch/__init__.py (_load_global_deps())", "nvidia-cuda-runtime")
    assert linkage.loaded["libcudart.so.13"] == cudart
    # the other folder not on the path: nothing finds it, as `import torch` would not
    alone = scan([site])
    torch = alone.get("torch")
    assert torch is not None
    missing = analyze(alone, torch, use_ld_cache=False, ld_library_path="", ld_preload="", cuda="13.0")
    assert missing.library("libcudart.so.13") is not None
    assert missing.library("libcudart.so.13").path is None  # type: ignore[union-attr]


def test_a_strict_preload_that_misses_one_library_leaves_the_split_wheel_unloaded(gcc: str, tmp_path: Path) -> None:
    """torch raises ValueError at the first library of the strict list found nowhere: what comes after it is
    never opened, and libtorch_global_deps is not loaded again."""
    site = torch_tree(tmp_path / "site", gcc, trimmed_init(("cufft", "libcufft.so.*[0-9]"), *STRICT))
    split_runtime(site, tmp_path / "other")
    env = scan([site, tmp_path / "other"])
    torch = env.get("torch")
    assert torch is not None
    linkage = analyze(env, torch, use_ld_cache=False, ld_library_path="", ld_preload="", cuda="13.0")
    assert linkage.library("libcudart.so.13") is not None
    assert linkage.library("libcudart.so.13").path is None  # type: ignore[union-attr]
