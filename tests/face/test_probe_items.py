"""The runtime probes as pytest items, end to end, and the static list of their names.

The plugin runs in a pytest subprocess on a fake torch 2.14.1 tree whose libraries are built
with gcc and laid out like the real wheels: ``torch/lib/libtorch_global_deps.so``,
``torch/lib/libtorch_cuda.so`` (with a ``.nv_fatbin`` made here) and
``torch/lib/libtorch_cuda_linalg.so`` with DT_RPATH ``$ORIGIN/../../nvidia/cu13/lib``, where
``libcudart.so.13`` (owned by nvidia-cuda-runtime's RECORD) and ``libcublas.so.13`` (owned by
nvidia-cublas's) lie.  The driver is either absent or the fake ``libcuda.so.1`` and
``libnvidia-ml.so.1`` of tests/support/fakes.py, put in front through ``LD_LIBRARY_PATH``, so that the
real nvidia-ml-py and ctypes code runs in the children.  ``torch/__init__.py`` is a stand-in
that the smoke child imports: it reports the build and sees no GPU.  Outcomes and messages are
read from ``--junitxml``, which keeps whole lines whatever the terminal width.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

import pytest_cudadeps
from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.engine.ldso import read_ld_so_cache
from pytest_cudadeps.probes import children as probing
from tests.support import sitebuilder as sb
from tests.support.bounds import WATCHDOG_SECONDS
from tests.support.build import build_so
from tests.support.fakes import CONSTRUCTORS, TWO_GPUS, fake_driver, fake_host
from tests.support.fatbin import CUBIN, container, entry
from tests.support.snapshots import CU13_LIB, runtime_checks, torch_snapshot

RPATH = "$ORIGIN/../../nvidia/cu13/lib"
RUNTIME_ITEMS = (
    "arch[torch]", "driver[libcuda]", "driver[nvml]", "driver[runtime-compat]",
    "load[libcublas.so.13]", "load[libcudart.so.13]", "load[torch-cuda]", "load[torch-global-deps]",
    "smoke[all-reduce]", "smoke[matmul]",
)
GPU_ITEMS = ("arch[torch]", "driver[libcuda]", "driver[nvml]", "driver[runtime-compat]", "smoke[matmul]")
NO_DRIVER_TORCH = "Found no NVIDIA driver on your system."
# torch/__init__.py of the tree: what the smoke child reads from torch, and no GPU.
FAKE_TORCH = f"""\
import ctypes

__version__ = "2.14.1+cu130"


class version:
    cuda = "13.0"


class backends:
    class cudnn:
        version = staticmethod(lambda: 92400)


class cuda:
    class nccl:
        version = staticmethod(lambda: (2, 30, 7))

    device_count = staticmethod(lambda: 0)

    @staticmethod
    def init():
        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            raise RuntimeError({NO_DRIVER_TORCH!r} + " Please check that you have an NVIDIA GPU.") from None
        raise RuntimeError("this stand-in for torch runs no GPU code")
"""


@dataclass(frozen=True)
class Libs:
    """gcc-built libraries, compiled once per module and copied into each tree."""

    global_deps: Path  # needs libcudart.so.13; DT_RPATH to nvidia/cu13/lib
    torch_cuda: Path  # needs libcudart.so.13; .nv_fatbin with sm_80, sm_90, sm_100 cubins and no PTX
    linalg: Path  # needs libcublas.so.13
    cudart: Path  # cudaRuntimeGetVersion answers 13000
    cublas: Path
    cublas_segv: Path  # a constructor that raises SIGSEGV
    cublas_hang: Path  # a constructor that never returns


def fatbin_source(data: bytes) -> str:
    """C source of a library whose ``.nv_fatbin`` section holds ``data`` (as tests/support/fatbin.py builds one)."""
    array = ", ".join(str(b) for b in data)
    return (f'__attribute__((section(".nv_fatbin"), used, aligned(8))) '
            f"const unsigned char fatbin[{len(data)}] = {{{array}}};\nint torch_cuda(void) {{ return 0; }}\n")


@pytest.fixture(scope="module")
def libs(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> Libs:
    root = tmp_path_factory.mktemp("runtime-libs")
    link = root / "link"

    def cuda_lib(folder: Path, soname: str, source: str) -> Path:
        return build_so(gcc, folder / soname, source, f"-Wl,-soname,{soname}")

    cudart = cuda_lib(link, "libcudart.so.13", "int cudaRuntimeGetVersion(int *v) { *v = 13000; return 0; }\n")
    cublas = cuda_lib(link, "libcublas.so.13", "int cublasCreate_v2(void **h) { return 0; }\n")
    uses = ("-Wl,--no-as-needed", f"-L{link}", "-l:libcudart.so.13", f"-Wl,--disable-new-dtags,-rpath,{RPATH}")
    global_deps = build_so(gcc, root / "torch" / "libtorch_global_deps.so", "int deps(void) { return 0; }\n", *uses)
    fatbin = container(entry(CUBIN, 80, b"\x01" * 16), entry(CUBIN, 90, b"\x02" * 16), entry(CUBIN, 100, b"\x03" * 16))
    torch_cuda = build_so(gcc, root / "torch" / "libtorch_cuda.so", fatbin_source(fatbin), *uses)
    linalg = build_so(gcc, root / "torch" / "libtorch_cuda_linalg.so", "int linalg(void) { return 0; }\n",
                      "-Wl,--no-as-needed", f"-L{link}", "-l:libcublas.so.13", f"-Wl,--disable-new-dtags,-rpath,{RPATH}")
    return Libs(global_deps, torch_cuda, linalg, cudart, cublas,
                cuda_lib(root / "segv", "libcublas.so.13", CONSTRUCTORS["segv"]),
                cuda_lib(root / "hang", "libcublas.so.13", CONSTRUCTORS["hang"]))


def _put(site: Path, rel: str, source: Path, owner: str) -> None:
    """Copy ``source`` to ``site/rel`` and list it in ``owner``'s RECORD, as pip does."""
    target = site / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    (info,) = site.glob(f"{owner.replace('-', '_')}-*.dist-info")
    with open(info / "RECORD", "a", encoding="utf-8") as record:
        record.write(sb._record_line(rel, target.read_bytes()) + "\n")


def torch_tree(site: Path, libs: Libs, *, cublas: Path | None = None, torch_init: str = FAKE_TORCH) -> Path:
    """torch 2.14.1 (CUDA 13.0) and its wheels, with the libraries above; ``cublas`` replaces libcublas.so.13."""
    torch = sb.torch_dist("2.14.1", "13.0", metadata_file=sb.DATA / "torch-2.14.1.METADATA")
    torch = replace(torch, files={**torch.files, "torch/__init__.py": torch_init})
    # RECORD lines written here, for these small files (the real RECORD gives the real wheel's sizes)
    wheels = [replace(d, record_file=None) for d in sb.CU13]
    sb.build(site, [torch, *sb.COMMON, *wheels])
    _put(site, "torch/lib/libtorch_global_deps.so", libs.global_deps, "torch")
    _put(site, "torch/lib/libtorch_cuda.so", libs.torch_cuda, "torch")
    _put(site, "torch/lib/libtorch_cuda_linalg.so", libs.linalg, "torch")
    _put(site, f"{CU13_LIB}/libcudart.so.13", libs.cudart, "nvidia-cuda-runtime")
    _put(site, f"{CU13_LIB}/libcublas.so.13", cublas or libs.cublas, "nvidia-cublas")
    return site


@dataclass(frozen=True)
class Outcomes:
    """One run of the plugin: exit status, and per item its outcome and message (from --junitxml)."""

    ret: int | pytest.ExitCode
    items: dict[str, tuple[str, str]]  # item name -> ("passed" | "failed" | "skipped", message or text)
    output: str

    def runtime(self) -> dict[str, str]:
        return {name: self.items[name][0] for name in RUNTIME_ITEMS}

    def message(self, name: str) -> str:
        return self.items[name][1]


def run_plugin(pytester: pytest.Pytester, site: Path, *args: str) -> Outcomes:
    report = pytester.path / "report.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cuda-deps-only", f"--cuda-deps-path={site}",
                                           f"--junitxml={report}", *args)
    output = result.stdout.str() + result.stderr.str()
    items: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        failure, skip = case.find("failure"), case.find("skipped")
        if failure is not None:
            items[str(case.get("name"))] = ("failed", failure.text or "")
        elif skip is not None:
            items[str(case.get("name"))] = ("skipped", skip.get("message", ""))
        else:
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            items[str(case.get("name"))] = ("passed", props.get("summary") or "")
    return Outcomes(result.ret, items, output)


def collected(pytester: pytest.Pytester, site: Path, *args: str) -> list[str]:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cuda-deps-only", f"--cuda-deps-path={site}",
                                           "--co", "-q", *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    return [line for line in result.outlines if line.startswith("cudadeps::")]


def host_driver() -> str | None:
    """This host's own libcuda.so.1 or libnvidia-ml.so.1, if it has one (then 'no driver' cannot be shown)."""
    cache = read_ld_so_cache()
    folders = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    folders += ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    for soname in ("libcuda.so.1", "libnvidia-ml.so.1"):
        if cache.get(soname):
            return str(cache[soname][0])
        found = next((f"{f}/{soname}" for f in folders if os.path.exists(f"{f}/{soname}")), None)
        if found:
            return found
    return None


@pytest.fixture
def no_driver() -> None:
    found = host_driver()
    if found:
        pytest.skip(f"this host has an NVIDIA driver library ({found}): 'no driver' cannot be shown here")


DriverInFront = Callable[..., Path]


@pytest.fixture
def driver_in_front(gcc: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> DriverInFront:
    """Put a fake driver with TWO_GPUS in front for the pytest subprocess: ``driver_in_front(driver=..., cuda=...)``."""

    def put(*, driver: str, cuda: int, gpus: tuple[tuple[str, int, int, int, int], ...] = TWO_GPUS) -> Path:
        folder = fake_driver(gcc, tmp_path_factory.mktemp(f"driver-{driver}"), driver=driver, cuda=cuda, gpus=gpus)
        monkeypatch.setenv("LD_LIBRARY_PATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("LD_LIBRARY_PATH")])))
        # the host the fake driver belongs to: its kernel module and device nodes (this machine has neither)
        if os.geteuid() != 0:
            pytest.skip("a fake host's device nodes need root (os.mknod)")
        host = fake_host(tmp_path_factory.mktemp("host"), driver=driver, gpus=len(gpus))
        monkeypatch.setenv("PYTEST_ADDOPTS", f"--cuda-deps-host-root={host}")
        return folder

    return put


def lib_path(site: Path, soname: str) -> Path:
    return site / CU13_LIB / soname


# --- no driver: skips with the reasons, or failures under --cuda-deps-require-gpu -------------------


def test_no_driver_skips_every_gpu_item_with_its_reason(pytester: pytest.Pytester, libs: Libs, no_driver: None) -> None:
    site = torch_tree(pytester.path / "site", libs)
    run = run_plugin(pytester, site)
    assert run.ret == pytest.ExitCode.OK, run.output
    assert run.runtime() == {
        "arch[torch]": "skipped", "driver[libcuda]": "skipped", "driver[nvml]": "skipped",
        "driver[runtime-compat]": "skipped", "load[libcublas.so.13]": "passed", "load[libcudart.so.13]": "passed",
        "load[torch-cuda]": "passed", "load[torch-global-deps]": "passed",
        "smoke[all-reduce]": "skipped", "smoke[matmul]": "skipped",
    }
    no_libcuda = "libcuda.so.1: cannot open shared object file: No such file or directory"
    assert run.message("driver[libcuda]") == f"libcuda.so.1 not found ({no_libcuda})"
    assert run.message("driver[nvml]") == ("NVML library not found: libnvidia-ml.so.1 is missing, "
                                           "no NVIDIA driver on this host")
    assert run.message("driver[runtime-compat]") == f"cannot compare the CUDA 13.0 runtime with the driver: {no_libcuda}"
    assert run.message("arch[torch]") == ("no GPU to check: NVML library not found (libnvidia-ml.so.1), "
                                          "no NVIDIA driver on this host")
    assert run.message("smoke[matmul]").startswith(f"torch 2.14.1+cu130 (CUDA 13.0) sees 0 GPU: {NO_DRIVER_TORCH}")
    assert run.message("smoke[all-reduce]").endswith("; this check needs 2")
    # the libraries load without a driver, each from the wheel the linkage check predicted
    assert run.message("load[libcudart.so.13]") == f"{lib_path(site, 'libcudart.so.13')} (already mapped)"
    assert run.message("load[libcublas.so.13]") == f"{lib_path(site, 'libcublas.so.13')} (opened)"
    assert run.message("load[torch-cuda]") == f"{site / 'torch/lib/libtorch_cuda.so'} (opened)"
    assert all(state == "passed" for name, (state, _) in run.items.items()
               if name not in RUNTIME_ITEMS and not name.startswith("host[")), run.items
    # this host has no NVIDIA kernel module or device nodes: the host items skip, saying so
    assert {state for name, (state, _) in run.items.items() if name.startswith("host[")} == {"skipped"}
    assert run.message("host[kernel-module]").startswith("no NVIDIA kernel module")


def test_no_driver_fails_the_gpu_items_when_a_gpu_is_required(pytester: pytest.Pytester, libs: Libs,
                                                                no_driver: None) -> None:
    site = torch_tree(pytester.path / "site", libs)
    run = run_plugin(pytester, site, "--cuda-deps-require-gpu")
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert {name: run.items[name][0] for name in GPU_ITEMS} == dict.fromkeys(GPU_ITEMS, "failed")
    assert run.items["smoke[all-reduce]"][0] == "skipped"  # needs 2 GPUs: a 1-GPU runner is not a failure
    for name in ("driver[libcuda]", "driver[nvml]", "driver[runtime-compat]", "arch[torch]"):
        # one root cause for all of them: each item names it in one line, the summary gives the fix once
        assert run.message(name).endswith(", but --cuda-deps-require-gpu asks for a GPU [root cause: no-driver; "
                                          "its fix is in the cudadeps summary]"), run.message(name)
    failed = sum(state == "failed" for state, _ in run.items.values())
    assert failed > len(GPU_ITEMS)
    assert f"cudadeps: {failed} failed checks from 1 root cause\n" in run.output
    assert run.output.count("fix: install the NVIDIA driver, or start the container with the GPU runtime "
                            "(docker run --gpus all)") == 1
    assert run.message("driver[libcuda]").startswith("libcuda.so.1 not found (libcuda.so.1: cannot open shared object")
    assert run.message("smoke[matmul]").startswith(
        f"torch 2.14.1+cu130 (CUDA 13.0) sees 0 GPU: {NO_DRIVER_TORCH}")
    assert "but --cuda-deps-require-gpu asks for a GPU" in run.message("smoke[matmul]")
    assert all(run.items[name][0] == "passed" for name in RUNTIME_ITEMS if name.startswith("load["))
    assert run.items["host[torch-build]"][0] == "failed"  # no GPU, asked for one
    assert "INTERNALERROR" not in run.output


# --- a fake driver in front: the real nvidia-ml-py and ctypes paths -----------------------------------


def test_driver_580_passes_and_arch_names_the_gpu_torch_lacks(pytester: pytest.Pytester, libs: Libs,
                                                               driver_in_front: DriverInFront) -> None:
    folder = driver_in_front(driver="580.65.06", cuda=13000)
    site = torch_tree(pytester.path / "site", libs)
    run = run_plugin(pytester, site)
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert {name: state for name, (state, _) in run.items.items() if state != "passed"} == {
        "arch[torch]": "failed", "smoke[all-reduce]": "skipped", "smoke[matmul]": "skipped"}
    assert run.message("driver[libcuda]") == f"{folder / 'libcuda.so.1'}: cuInit ok, supports CUDA 13.0"
    assert run.message("driver[nvml]") == (
        "driver 580.65.06, CUDA 13.0; GPU 0 NVIDIA RTX PRO 6000 Blackwell (compute capability 12.0, 96 GiB, MIG on); "
        "GPU 1 NVIDIA H100 80GB HBM3 (compute capability 9.0, 80 GiB, MIG n/a)")
    cudart = lib_path(site, "libcudart.so.13")
    assert run.message("driver[runtime-compat]") == (
        f"NVIDIA driver 580.65.06 (CUDA 13.0) runs the CUDA 13.0 runtime from {cudart} (cudaRuntimeGetVersion 13000)")
    torch_cuda = site / "torch/lib/libtorch_cuda.so"
    assert run.message("arch[torch]").splitlines() == [
        "torch has no code for GPU 0 NVIDIA RTX PRO 6000 Blackwell (compute capability 12.0)",
        f"  GPU 0 NVIDIA RTX PRO 6000 Blackwell (compute capability 12.0, sm_120): {torch_cuda} has "
        "cubin sm_80, sm_90, sm_100; PTX none",
        "  fix: install a torch build compiled for compute capability 12.0 (a newer release, or a source build "
        "with TORCH_CUDA_ARCH_LIST=12.0)",
    ]
    assert run.message("smoke[matmul]") == ("torch 2.14.1+cu130 (CUDA 13.0) sees 0 GPU: "
                                            "this stand-in for torch runs no GPU code")


def test_driver_550_is_too_old_for_the_cuda_13_torch(pytester: pytest.Pytester, libs: Libs,
                                                     driver_in_front: DriverInFront) -> None:
    driver_in_front(driver="550.54.14", cuda=12040)
    site = torch_tree(pytester.path / "site", libs)
    run = run_plugin(pytester, site)
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert run.items["driver[libcuda]"][0] == run.items["driver[nvml]"][0] == "passed"
    cudart = lib_path(site, "libcudart.so.13")
    assert run.message("driver[runtime-compat]").splitlines() == [
        f"NVIDIA driver 550.54.14 (CUDA 12.4) is too old for the CUDA 13.0 runtime in the wheels ({cudart} "
        "(cudaRuntimeGetVersion 13000)): CUDA 13.x needs driver >= 580 (CUDA 13.0 GA: 580.65.06)",
        "  torch fails with: CUDA driver version is insufficient for CUDA runtime version",
        "  fix: upgrade the NVIDIA driver to 580.65.06 or newer, or install the torch build for CUDA 12.4: "
        "pip install torch --index-url https://download.pytorch.org/whl/cu124",
    ]
    assert run.items["arch[torch]"][0] == "failed"  # the same torch, the same GPUs: no sm_120


# --- one driver fault, one root cause: the driver's first failing item explains the rest ----------------

# torch's own words on an old driver (c10/cuda/CUDAFunctions.cpp), where the stand-in would run GPU code
TOO_OLD_TORCH = FAKE_TORCH.replace('raise RuntimeError("this stand-in for torch runs no GPU code")',
                                   'raise RuntimeError("The NVIDIA driver on your system is too old (found version '
                                   '12040). Please update your GPU driver.")')
@dataclass(frozen=True)
class DriverFault:
    """A driver that is there and faulty: what the fake driver answers, the host's kernel module, the run."""

    cause: str  # the one root cause expected
    failing: frozenset[str]  # every item that fails
    driver: str = "580.65.06"
    cuda: int = 13000
    cu_init: int = 0
    nvml_init: int = 0
    kernel_module: str = "580.65.06"
    torch_init: str = FAKE_TORCH
    options: tuple[str, ...] = ("--cuda-deps-require-gpu",)


NO_GPU_SEEN = frozenset({"arch[torch]", "host[mig]", "host[shm]", "host[torch-build]", "host[visible-devices]",
                         "smoke[matmul]"})  # what fails under --cuda-deps-require-gpu when NVML lists no GPU
DRIVER_FAULTS = {
    "too-old": DriverFault("driver[runtime-compat]", frozenset({"driver[runtime-compat]", "smoke[matmul]"}),
                           driver="550.54.14", cuda=12040, kernel_module="550.54.14", torch_init=TOO_OLD_TORCH),
    # upgraded without a reboot: cuInit 803, NVML 18, and the kernel module of the old release
    "mismatch": DriverFault("driver[libcuda]", frozenset({"driver[libcuda]", "driver[nvml]", "host[kernel-module]"}),
                            cu_init=803, nvml_init=18, kernel_module="580.82.07", options=()),
    "mismatch-gpu-required": DriverFault(
        "driver[libcuda]", frozenset({"driver[libcuda]", "driver[nvml]", "host[kernel-module]"}) | NO_GPU_SEEN,
        cu_init=803, nvml_init=18, kernel_module="580.82.07"),
    "nvml-not-loaded": DriverFault("driver[nvml]", frozenset({"driver[nvml]"}) | NO_GPU_SEEN, nvml_init=9),
    "cuinit-unknown": DriverFault("driver[libcuda]", frozenset({"driver[libcuda]", "smoke[matmul]"}), cu_init=999),
}


@pytest.mark.parametrize("name", sorted(DRIVER_FAULTS))
def test_one_driver_fault_is_one_root_cause_whatever_it_fails(pytester: pytest.Pytester, libs: Libs, gcc: str,
                                                              tmp_path_factory: pytest.TempPathFactory,
                                                              monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Before: the driver's item was one cause and every item that saw no GPU another (``no-driver``, whose fix
    installs a driver that is there), NVML's failure a third, the kernel module's mismatch a fourth (2, 3, 4, 2
    and 2 causes for the faults here)."""
    if os.geteuid() != 0:
        pytest.skip("a fake host's device nodes need root (os.mknod)")
    fault = DRIVER_FAULTS[name]
    folder = fake_driver(gcc, tmp_path_factory.mktemp("driver"), driver=fault.driver, cuda=fault.cuda,
                         gpus=TWO_GPUS[1:], cu_init=fault.cu_init, nvml_init=fault.nvml_init)
    # the real file name of an installed driver's libcuda: host[kernel-module] reads the release from it
    (folder / "libcuda.so.1").rename(folder / f"libcuda.so.{fault.driver}")
    (folder / "libcuda.so.1").symlink_to(f"libcuda.so.{fault.driver}")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(folder))
    host = fake_host(tmp_path_factory.mktemp("host"), driver=fault.kernel_module, gpus=1)
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--cuda-deps-host-root={host}")
    run = run_plugin(pytester, torch_tree(pytester.path / "site", libs, torch_init=fault.torch_init), *fault.options)
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert {item for item, (state, _) in run.items.items() if state == "failed"} == fault.failing
    count = len(fault.failing)
    assert f"cudadeps: {count} failed checks from 1 root cause\n" in run.output
    assert f"[1] {fault.cause}: {count} failed checks: " in run.output
    assert "no-driver" not in run.output  # the driver is there: installing one is no fix
    summary = run.output.split("from 1 root cause\n", 1)[1]
    assert summary.count("fix: ") == 1, summary  # one fix: the driver's own, not "install the NVIDIA driver"
    assert "install the NVIDIA driver" not in summary


# --- a library that crashes or hangs its child: a failing item, and the run goes on -------------------


@pytest.mark.parametrize(("kind", "trouble"), [
    ("segv", "crashed: killed by signal 11 (SIGSEGV)"),
    ("hang", "hung: no answer within 2 s (killed)"),
])
def test_a_library_that_kills_or_hangs_its_child_fails_its_item_only(pytester: pytest.Pytester, libs: Libs,
                                                                      driver_in_front: DriverInFront,
                                                                      kind: str, trouble: str) -> None:
    driver_in_front(driver="580.65.06", cuda=13000, gpus=TWO_GPUS[1:])  # an H100: torch has sm_90
    site = torch_tree(pytester.path / "site", libs, cublas=getattr(libs, f"cublas_{kind}"))
    run = run_plugin(pytester, site, "--cuda-deps-timeout=2")
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert "INTERNALERROR" not in run.output
    assert [name for name, (state, _) in sorted(run.items.items()) if state == "failed"] == ["load[libcublas.so.13]"]
    lines = run.message("load[libcublas.so.13]").splitlines()
    assert lines[0] == f"loading {lib_path(site, 'libcublas.so.13')} {trouble}"
    assert lines[-1].startswith("  fix: ")
    assert "pip install --force-reinstall --no-deps 'nvidia-cublas==13.1.1.3.*'" in lines[-1]
    # the libraries after it were loaded by a new child, with torch's own libraries loaded first again
    assert run.message("load[libcudart.so.13]") == f"{lib_path(site, 'libcudart.so.13')} (already mapped)"
    # and the other probes ran: the driver, the architectures, the smoke child
    assert run.runtime() == {**dict.fromkeys(RUNTIME_ITEMS, "passed"), "load[libcublas.so.13]": "failed",
                             "smoke[all-reduce]": "skipped", "smoke[matmul]": "skipped"}
    assert run.message("arch[torch]") == "GPU 0 NVIDIA H100 80GB HBM3: sm_90 cubin"


def test_an_unreadable_library_in_torch_lib_fails_arch_with_the_file_not_a_traceback(
        pytester: pytest.Pytester, libs: Libs, driver_in_front: DriverInFront) -> None:
    driver_in_front(driver="580.65.06", cuda=13000, gpus=TWO_GPUS[1:])
    site = torch_tree(pytester.path / "site", libs)
    script = site / "torch/lib/libtorch_cpu_script.so"
    script.write_text("INPUT(libtorch_cpu.so)\n" * 8)  # a linker script where a library should be
    run = run_plugin(pytester, site)
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert "INTERNALERROR" not in run.output
    assert "Traceback" not in run.output
    assert run.message("arch[torch]").splitlines() == [
        f"cannot read the GPU code of torch 2.14.1: {script}: not a readable ELF file (invalid ELF header)",
        "  fix: reinstall it: pip install --force-reinstall --no-deps 'torch==2.14.1'",
    ]
    assert run.items["elf[torch>libtorch_cpu_script.so]"][0] == "failed"
    assert run.items["driver[nvml]"][0] == "passed"


# --- the item list: files only, never the GPUs -----------------------------------------------------


def test_the_item_list_is_the_same_with_and_without_a_driver(pytester: pytest.Pytester, libs: Libs,
                                                             driver_in_front: DriverInFront) -> None:
    site = torch_tree(pytester.path / "site", libs)
    without = collected(pytester, site)
    driver_in_front(driver="580.65.06", cuda=13000)
    with_gpus = collected(pytester, site)
    assert without == with_gpus == sorted(without)
    assert {f"cudadeps::{name}" for name in RUNTIME_ITEMS} <= set(without)
    assert [name for name in without if "load[" in name] == [f"cudadeps::{n}" for n in RUNTIME_ITEMS if "load[" in n]


def test_no_child_outlives_a_run_that_never_needed_its_answer(pytester: pytest.Pytester, libs: Libs,
                                                               no_driver: None) -> None:
    """The children start while the static checks run; when no selected item needs an answer
    (``-k installed-once``), the run does not wait for it, and the child is killed at the end."""
    site = torch_tree(pytester.path / "site", libs, torch_init="import time\ntime.sleep(600)\n")
    started = time.monotonic()
    run = run_plugin(pytester, site, "-k", "installed-once")
    assert run.ret == pytest.ExitCode.OK, run.output
    assert list(run.items) == ["installed-once[all]"]
    assert time.monotonic() - started < WATCHDOG_SECONDS  # did not wait for the child's 600 s
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _children_of(site):
        time.sleep(0.1)
    assert _children_of(site) == [], "a child outlived the pytest run"


def _children_of(site: Path) -> list[int]:
    """Live processes whose environment names ``site`` (the children get it in PYTHONPATH)."""
    found = []
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            if str(site).encode() in (process / "environ").read_bytes() and " Z " not in (process / "stat").read_text():
                found.append(int(process.name))
        except OSError:
            continue
    return found


def test_xdist_workers_collect_and_probe_the_same_items(pytester: pytest.Pytester, libs: Libs,
                                                        driver_in_front: DriverInFront) -> None:
    pytest.importorskip("xdist")
    driver_in_front(driver="580.65.06", cuda=13000)
    site = torch_tree(pytester.path / "site", libs)
    items = collected(pytester, site)
    run = run_plugin(pytester, site, "-n", "2")
    assert "Different tests were collected" not in run.output
    # xdist >= 3.3 announces its workers as "created: 2/2 workers", older ones as "gw0 I / gw1 I"
    assert "created: 2/2 workers" in run.output or "gw0 I / gw1 I" in run.output
    assert sorted(f"cudadeps::{name}" for name in run.items) == items
    # each worker runs the probes its items need, with the same answers as one process
    assert run.runtime() == {
        **dict.fromkeys(RUNTIME_ITEMS, "passed"), "arch[torch]": "failed",
        "smoke[all-reduce]": "skipped", "smoke[matmul]": "skipped"}
    assert run.ret == pytest.ExitCode.TESTS_FAILED


# --- runtime_checks: the names of the probe items (each probe run once: tests/probes/test_children.py) ----


def test_runtime_checks_names_for_a_torch_root(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    (site / "torch/lib").mkdir()
    (site / "torch/lib/libtorch_cuda.so").write_bytes(b"")  # only its presence matters to the names
    snapshot = torch_snapshot(site)
    checks = runtime_checks(snapshot)
    assert sorted(checks) == [
        "arch[torch]", "driver[libcuda]", "driver[nvml]", "driver[runtime-compat]",
        "host[compat]", "host[device-nodes]", "host[kernel-module]", "host[mig]", "host[shm]", "host[torch-build]",
        "host[visible-devices]",
        "load[libcublas.so.13]", "load[libcuda.so.1]", "load[libcudart.so.13]",  # CUDA sonames only, not libc
        "load[torch-cuda]", "load[torch-global-deps]", "smoke[all-reduce]", "smoke[matmul]",
    ]
    # without libtorch_cuda.so a CUDA build still gets its item (which fails to load it: never a silent
    # drop); with no roots there is nothing to probe
    (site / "torch/lib/libtorch_cuda.so").unlink()
    assert "load[torch-cuda]" in runtime_checks(snapshot)
    assert runtime_checks(replace(snapshot, roots=())) == {}


def test_runtime_checks_for_a_cpu_torch_skip_without_a_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = sb.torch_cpu(tmp_path / "site")
    (site / "torch/lib").mkdir()
    (site / "torch/lib/libtorch_cuda.so").write_bytes(b"")  # present, yet version.py says cuda = None
    snapshot = torch_snapshot(site)
    monkeypatch.setattr(probing, "probe_torch", lambda *a, **k: pytest.fail("a CPU-only torch needs no torch child"))
    checks = runtime_checks(snapshot)
    assert "load[torch-global-deps]" not in checks  # a CPU build has no libtorch_cuda.so to load as torch does
    for name in ("smoke[matmul]", "smoke[all-reduce]", "arch[torch]"):
        finding = checks[name]()
        assert finding.outcome is Outcome.SKIP
        assert "torch 2.13.0+cpu is a CPU-only build" in finding.message


def test_the_compile_item_comes_with_its_option_only(pytester: pytest.Pytester, libs: Libs) -> None:
    site = torch_tree(pytester.path / "site", libs)
    assert "cudadeps::smoke[compile]" not in collected(pytester, site)
    assert "cudadeps::smoke[compile]" in collected(pytester, site, "--cuda-deps-compile")


@pytest.mark.parametrize(("visible", "outcome", "fragment"), [
    ("GPU-00000000-0000-0000-0000-000000000001", "passed", "NVIDIA H100 80GB HBM3"),
    ("GPU-ffffffff", "failed", "GPU-ffffffff"),
])
def test_visible_devices_by_uuid_are_checked_against_the_uuids_nvml_reports(
        pytester: pytest.Pytester, libs: Libs, driver_in_front: DriverInFront, monkeypatch: pytest.MonkeyPatch,
        visible: str, outcome: str, fragment: str) -> None:
    driver_in_front(driver="580.65.06", cuda=13000)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    site = torch_tree(pytester.path / "site", libs)
    run = run_plugin(pytester, site, "-k", "visible-devices")
    state, message = run.items["host[visible-devices]"]
    assert state == outcome, message
    assert fragment in message


# --- a run that is stopped from outside: no child outlives it ------------------------------------------


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_signalled_run_leaves_no_child(pytester: pytest.Pytester, libs: Libs, driver_in_front: DriverInFront,
                                         signum: int) -> None:
    """``python -m pytest_cudadeps`` with a library whose constructor never returns: its load child hangs;
    a CI cancel (SIGTERM), a closed terminal (SIGHUP) or SIGKILL of the run ends that child too."""
    driver_in_front(driver="580.65.06", cuda=13000, gpus=TWO_GPUS[1:])
    site = torch_tree(pytester.path / "site", libs, cublas=libs.cublas_hang)
    # this checkout's package, not another one an editable install points at
    env = {**os.environ, "PYTHONPATH": str(Path(pytest_cudadeps.__file__).parents[1])}
    run = subprocess.Popen([sys.executable, "-m", "pytest_cudadeps", f"--cuda-deps-path={site}",
                            "--cuda-deps-timeout=3600"], cwd=pytester.path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        for _ in range(2400):  # polls of 50 ms: a watchdog, not a bound
            children = children_of(run.pid)
            if any(maps_hanging_library(pid) for pid in children) or run.poll() is not None:
                break
            time.sleep(0.05)
        assert any(maps_hanging_library(pid) for pid in children), "no child is in the hanging constructor"
        run.send_signal(signum)
        assert run.wait(timeout=120) == -signum
        for _ in range(1200):
            if not alive_of(children):
                break
            time.sleep(0.05)
        assert not alive_of(children), f"children {children} outlived the run"
    finally:
        for pid in (run.pid, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.wait()


def maps_hanging_library(pid: int) -> bool:
    try:
        return "/libcublas.so.13" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def alive_of(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie is not: PID 1 of a container may never reap it)."""
    live = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            live.append(pid)
    return live
