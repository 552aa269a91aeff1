"""Other CUDA frameworks' items: gcc-built trees in onnxruntime-gpu 1.31.1's layout (tests/support/onnxruntime.py: a
CUDA provider without RPATH, an optional TensorRT provider, CUDA wheels declared under extras), checked against the
real loader in a child; the real onnxruntime-gpu wheel in the integration tier."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.checks.static import static_findings
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support import sitebuilder as sb
from tests.support import venvs
from tests.support.build import build_so
from tests.support.onnxruntime import CAPI, CU13, lib, ort_tree
from tests.support.sitebuilder import add_to_record

LOADER = "/lib64/ld-linux-x86-64.so.2"


def findings(site: Path) -> dict[str, Finding]:
    return {f.name: f for f in static_findings(take_snapshot(Settings(paths=(str(site),), no_ld_cache=True)))}


def test_a_provider_without_rpath_is_found_only_when_preloaded(tmp_path: Path, gcc: str) -> None:
    site = ort_tree(tmp_path, gcc)
    found = findings(site)
    cudart = found["linkage[onnxruntime-gpu>libcudart.so.13]"]
    assert cudart.outcome is Outcome.PASS
    assert cudart.message.startswith("libonnxruntime_providers_cuda.so has no RPATH or RUNPATH: libcudart.so.13 is "
                                     "found only when it is loaded already: `import torch` first (maps "
                                     f"{site / CU13 / 'libcudart.so.13'}, nvidia-cuda-runtime 13.0.96) or "
                                     "`onnxruntime.preload_dlls()`")
    assert cudart.message.endswith("alone, ld.so finds nothing (`libcudart.so.13: cannot open shared object file`)")
    curand = found["linkage[onnxruntime-gpu>libcurand.so.10]"]  # torch's fake needs no curand: only preload_dlls
    assert "found only when it is loaded already: `onnxruntime.preload_dlls()` (maps" in curand.message


def test_the_real_loader_agrees_alone_it_fails_after_torch_or_a_preload_it_loads(tmp_path: Path, gcc: str) -> None:
    site = ort_tree(tmp_path, gcc)
    provider = site / CAPI / "libonnxruntime_providers_cuda.so"
    code = ("import ctypes, sys\n"
            "for first in sys.argv[2:]:\n    ctypes.CDLL(first)\n"
            "try:\n    ctypes.CDLL(sys.argv[1]); print('loaded')\nexcept OSError as e:\n    print(e)\n")

    def load(*first: Path) -> str:
        result = subprocess.run([LOADER, "--inhibit-cache", sys.executable, "-c", code, str(provider), *map(str, first)],
                                capture_output=True, text=True, timeout=60, env={**os.environ, "LD_LIBRARY_PATH": ""})
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert "cannot open shared object file" in load()
    preload = [site / CU13 / name for name in ("libcublas.so.13", "libcurand.so.10", "libcudart.so.13")]
    assert load(*preload) == "loaded"  # onnxruntime.preload_dlls()
    assert load(site / "torch/lib/libtorch_global_deps.so", site / CU13 / "libcurand.so.10") == "loaded"


def test_a_wheel_an_extra_declares_is_declared_and_the_fix_installs_the_extras(tmp_path: Path, gcc: str) -> None:
    found = findings(ort_tree(tmp_path, gcc, omit=("nvidia-curand",)))
    curand = found["linkage[onnxruntime-gpu>libcurand.so.10]"]
    assert curand.outcome is Outcome.FAIL
    assert "relies on libcurand.so.10 being loaded first, but neither `import torch`" in curand.message
    assert "declared: onnxruntime-gpu[cuda] 1.31.1 > nvidia-curand~=10.0" in curand.details
    assert curand.fix == "pip install 'onnxruntime-gpu[cuda]'"  # the extra is required: it brings the wheel back


def test_an_optional_plugin_is_a_note(tmp_path: Path, gcc: str) -> None:
    found = findings(ort_tree(tmp_path, gcc))
    plugin = found["plugin[onnxruntime-gpu>libonnxruntime_providers_tensorrt.so]"]
    assert plugin.outcome is Outcome.SKIP
    assert plugin.message.endswith("it lacks libcudnn.so.9, libnvinfer.so.10")
    cudnn = found["linkage[onnxruntime-gpu>libcudnn.so.9]"]  # only the TensorRT provider needs it
    assert cudnn.outcome is Outcome.SKIP
    assert cudnn.message.startswith("libcudnn.so.9 is needed only by libonnxruntime_providers_tensorrt.so, an optional")
    assert found["linkage[onnxruntime-gpu>libcudart.so.13]"].outcome is Outcome.PASS  # the CUDA provider needs it too


def test_roots_that_need_two_majors_or_pins_nobody_satisfies_conflict(tmp_path: Path, gcc: str) -> None:
    site = ort_tree(tmp_path, gcc, extra=(sb.Dist("oldframework", "1.0", ("nvidia-cudnn-cu13<9.20",)),))
    old = lib(gcc, site / "oldframework/lib/libcudart.so.12")
    ext = build_so(gcc, site / "oldframework/_ops.so", "int ops(void) { return 0; }\n", f"-L{old.parent}",
                   "-Wl,--no-as-needed", "-l:libcudart.so.12", "-Wl,-rpath,$ORIGIN/lib")
    add_to_record(site, "oldframework", [ext, old])
    found = findings(site)
    majors = found["shared[libcudart]"]
    assert majors.outcome is Outcome.FAIL
    assert majors.message == ("the roots need different majors of libcudart: libcudart.so.12: oldframework; "
                              "libcudart.so.13: onnxruntime-gpu, torch")
    pins = found["shared[nvidia-cudnn-cu13]"]
    assert pins.outcome is Outcome.FAIL
    assert pins.message == ("no single version of nvidia-cudnn-cu13 satisfies every root: nvidia-cudnn-cu13 9.24.0.43 "
                            "is installed, which oldframework 1.0 refuses (nvidia-cudnn-cu13<9.20)")
    assert found["shared[nvidia-cuda-runtime]"].outcome is Outcome.PASS  # torch ==13.0.96.*, onnxruntime ~=13.0


# --- the real onnxruntime-gpu 1.31.1 wheel (255.6 MB, downloaded once into the venv cache) ------------------------


@pytest.fixture(scope="session")
def ort_wheel() -> Path:
    return venvs.wheel("onnxruntime-gpu", "1.31.1")


@pytest.mark.integration
def test_real_onnxruntime_gpu_beside_torch(scenario: Callable[..., Path], ort_wheel: Path, tmp_path: Path) -> None:
    venv = scenario("nvidia-curand")
    result = venvs.pip(venv, "install", "--no-deps", str(ort_wheel))
    assert result.returncode == 0, result.stderr
    site = venvs.site_packages(venv)
    run = venvs.run_plugin(site, "--cuda-deps-no-probes", "-rA", "-vv", cwd=tmp_path)  # -vv: consequences as failures
    out = run.stdout
    assert "PASSED cudadeps::linkage[onnxruntime-gpu>libcublas.so.13]" in out
    assert ("libonnxruntime_providers_cuda.so has no RPATH or RUNPATH: libcublas.so.13 is found only when it is "
            f"loaded already: `import torch` first (maps {site}/nvidia/cu13/lib/libcublas.so.13, nvidia-cublas") in out
    assert "SKIPPED [1] cudadeps::plugin[onnxruntime-gpu>libonnxruntime_providers_tensorrt.so]" in out
    assert re.search(r"(FAILED|CONSEQUENCE) cudadeps::linkage\[onnxruntime-gpu>libcurand.so.10\]", out), out[-3000:]
    assert "  fix: pip install 'onnxruntime-gpu[cuda]'" in out  # the extra that declares nvidia-curand
    assert "PASSED cudadeps::linkage[onnxruntime-gpu>libcudart.so.13]" in out  # declared by its [cuda] extra


def _bnb_site(tmp_path: Path, gcc: str, *libs: str) -> Path:
    """torch 2.14.1's tree (its global deps map libcudart and libcublas) and bitsandbytes with one CUDA binary per
    version, each needing ``libs`` without a search path, as bitsandbytes 0.50.2's do (their RUNPATH is the build
    machine's)."""
    site = ort_tree(tmp_path, gcc, extra=(sb.Dist("bitsandbytes", "0.50.2", ("torch<3,>=2.4",)),))
    built = [build_so(gcc, site / f"bitsandbytes/libbitsandbytes_cuda{v}.so", "int bnb(void) { return 0; }\n",
                      f"-L{site / CU13}", "-Wl,--no-as-needed", *(f"-l:{lib}" for lib in libs)) for v in (128, 130)]
    add_to_record(site, "bitsandbytes", built)
    return site


def test_bitsandbytes_is_checked_in_torchs_process_for_the_binary_it_picks(tmp_path: Path, gcc: str) -> None:
    found = findings(_bnb_site(tmp_path, gcc, "libcudart.so.13", "libcublas.so.13"))
    binary = found["after-torch[bitsandbytes>libbitsandbytes_cuda130.so]"]
    assert binary.outcome is Outcome.PASS
    assert not [name for name in found if "bitsandbytes" in name and name != binary.name]  # not a root, one item


def test_bitsandbytes_needing_what_torch_does_not_map_fails(tmp_path: Path, gcc: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    site = _bnb_site(tmp_path, gcc, "libcudart.so.13", "libcurand.so.10")  # the tree's torch maps no libcurand
    binary = findings(site)["after-torch[bitsandbytes>libbitsandbytes_cuda130.so]"]
    assert binary.outcome is Outcome.FAIL
    assert "needs libcurand.so.10, which `import torch` does not map" in binary.message
    monkeypatch.setenv("BNB_CUDA_VERSION", "131")
    override = findings(site)["after-torch[bitsandbytes>libbitsandbytes_cuda131.so]"]
    assert (override.outcome, override.fix) == (Outcome.FAIL, "unset BNB_CUDA_VERSION")


def test_roots_whose_ranges_overlap_get_one_merged_install_not_a_conflict(tmp_path: Path, gcc: str) -> None:
    # torch pins nvidia-cudnn-cu13==9.24.0.43, onnxruntime-gpu[cudnn] ~=9.0, this one >=9.20,<9.30; 9.19 is installed
    newer = sb.Dist("newframework", "1.0", ("nvidia-cudnn-cu13<9.30,>=9.20",))
    site = ort_tree(tmp_path, gcc, extra=(newer,))
    info = next(site.glob("nvidia_cudnn_cu13-*.dist-info"))
    metadata = (info / "METADATA").read_text(encoding="utf-8")
    (info / "METADATA").write_text(metadata.replace("Version: 9.24.0.43", "Version: 9.19.0.56"), encoding="utf-8")
    pins = findings(site)["shared[nvidia-cudnn-cu13]"]
    assert pins.outcome is Outcome.FAIL
    assert pins.message.endswith("the roots' ranges overlap (9.24.0.43 satisfies every one)")
    assert pins.fix == "pip install 'nvidia-cudnn-cu13<9.30,==9.24.0.43,>=9.20,~=9.0'"


def test_jax_parts_at_another_version_than_jaxlib_are_one_finding_with_the_install_that_aligns_them(
        tmp_path: Path, gcc: str) -> None:
    from tests.support.jax import jax_tree

    intact = findings(jax_tree(tmp_path / "intact", gcc))["parts[jax]"]
    assert intact.outcome is Outcome.PASS
    site = jax_tree(tmp_path / "old", gcc, versions={"jax-cuda13-plugin": "0.9.2", "jax-cuda13-pjrt": "0.9.2"})
    parts = findings(site)["parts[jax]"]
    assert parts.outcome is Outcome.FAIL
    assert parts.message.startswith("jax's parts do not match: jax 0.10.2, jaxlib 0.10.2, jax-cuda13-plugin 0.9.2, "
                                    "jax-cuda13-pjrt 0.9.2")
    assert parts.fix == "pip install 'jax-cuda13-plugin==0.10.2' 'jax-cuda13-pjrt==0.10.2'"


# --- numba-cuda's libdevice: file[numba-cuda>libdevice.10.bc] -------------------------------------------------------


def numba_tree(tmp_path: Path, *, nvvm: bool = True, libdevice: bool = True) -> Path:
    """numba-cuda[cu13] 0.30.4 as its METADATA declares nvvm (cuda-toolkit[nvvm]==13.*), with or without the
    nvidia-nvvm wheel and its libdevice.10.bc."""
    dists = [sb.Dist("numba-cuda", "0.30.4", ('cuda-toolkit[nvvm]==13.*; extra == "cu13"',), ("cu13",)),
             sb.Dist("cuda-bindings", "13.5.0"),
             sb.Dist("cuda-toolkit", "13.5.0", ('nvidia-nvvm==13.5.37.*; extra == "nvvm"',), ("nvvm",))]
    site = sb.build(tmp_path / "site", [*dists, *([sb.Dist("nvidia-nvvm", "13.5.37")] if nvvm else [])])
    if nvvm and libdevice:
        bitcode = site / "nvidia/cu13/nvvm/libdevice/libdevice.10.bc"
        bitcode.parent.mkdir(parents=True)
        bitcode.write_bytes(b"BC\xc0\xde")
        add_to_record(site, "nvidia_nvvm", [bitcode])
    return site


def libdevice(site: Path, environ: dict[str, str], system: Path) -> tuple[Finding, list[str]]:
    """The libdevice item and the ids of the causes of every failing finding."""
    from pytest_cudadeps.checks.frameworks import file_findings
    from pytest_cudadeps.checks.requires import declared_findings
    from pytest_cudadeps.report.causes import Causes

    snapshot = take_snapshot(Settings(paths=(str(site),)), with_linkage=False)
    found = file_findings(snapshot, environ, system)
    static = declared_findings(snapshot) + found
    causes = Causes(snapshot, static)
    ids = sorted({cause.id for f in static if f.outcome is Outcome.FAIL and (cause := causes.cause_of(f))})
    assert [f.name for f in found] == ["file[numba-cuda>libdevice.10.bc]"]
    return found[0], ids


def test_libdevice_is_found_in_numbas_order_and_its_wheel_missing_is_one_cause(tmp_path: Path) -> None:
    none = tmp_path / "no-system-cuda"
    intact, causes = libdevice(numba_tree(tmp_path / "intact"), {}, none)
    assert intact.outcome is Outcome.PASS
    assert "the nvidia-nvvm 13.5.37 wheel" in intact.message
    assert causes == []
    missing, causes = libdevice(numba_tree(tmp_path / "missing", nvvm=False), {}, none)
    assert missing.outcome is Outcome.FAIL
    assert missing.fix == "pip install 'nvidia-nvvm==13.5.37.*'"
    assert causes == ["requires[numba-cuda>nvidia-nvvm]"]  # the item follows from the wheel's requires item
    emptied, causes = libdevice(numba_tree(tmp_path / "emptied", libdevice=False), {}, none)
    assert emptied.fix == "pip install --force-reinstall --no-deps 'nvidia-nvvm==13.5.37'"
    assert causes == ["file[numba-cuda>libdevice.10.bc]"]
    toolkit = tmp_path / "cuda-13.0"
    (toolkit / "nvvm/libdevice").mkdir(parents=True)
    (toolkit / "nvvm/libdevice/libdevice.10.bc").write_bytes(b"BC\xc0\xde")
    home, _ = libdevice(numba_tree(tmp_path / "home", nvvm=False), {"CUDA_HOME": str(toolkit)}, none)
    assert home.outcome is Outcome.PASS
    assert "in CUDA_HOME" in home.message
    system, _ = libdevice(numba_tree(tmp_path / "system", nvvm=False), {}, toolkit)
    assert system.outcome is Outcome.PASS
