from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.smoke import all_reduce_finding, compile_finding, matmul_finding
from pytest_cudadeps.probes.child.protocol import Loaded
from pytest_cudadeps.probes.load import LoadStep, library_steps
from pytest_cudadeps.probes.runner import ChildRun
from pytest_cudadeps.probes.torch import SmokeRun, probe_torch, start_torch
from tests.support import venvs
from tests.support.fakes import misbehaving

TORCH = {"torch": "2.14.1+cu130", "cuda": "13.0", "cudnn": "9.24.0", "nccl": "2.30.7", "device_count": 1}


def canned(results: dict[str, dict[str, Any]], *, finished: bool = True, returncode: int | None = 0) -> SmokeRun:
    return SmokeRun.from_run(ChildRun(("python",), results, tuple(results), finished, returncode, returncode is None,
                             60.0, 1.0))


def check(dtype: str, error: float, tolerance: float) -> dict[str, Any]:
    return {"dtype": dtype, "error": error, "tolerance": tolerance, "ok": error <= tolerance,
            "seconds": 0.001, "gflops": 2147.5}


def test_matmul_within_tolerance_reports_gflops_and_versions() -> None:
    smoke = canned({"import torch": TORCH, "matmul[cuda:0]": {
        "device": "cuda:0", "name": "NVIDIA H100", "checks": [check("float32", 1e-6, 1e-3), check("bfloat16", 4e-3, 3e-2)]}})
    finding = matmul_finding(smoke)
    assert finding.outcome is Outcome.PASS
    assert finding.message == ("cuda:0 NVIDIA H100: float32 2148 GFLOP/s (err 1.0e-06), bfloat16 2148 GFLOP/s "
                               "(err 4.0e-03) [torch 2.14.1+cu130, cuda 13.0, cudnn 9.24.0, nccl 2.30.7]")
    assert dict(finding.facts)["cudnn"] == "9.24.0"


def test_matmul_outside_tolerance_or_raising_fails() -> None:
    smoke = canned({"import torch": TORCH, "matmul[cuda:0]": {
        "device": "cuda:0", "name": "NVIDIA H100", "checks": [
            check("float32", 0.5, 1e-3),
            {"dtype": "bfloat16", "ok": False, "failure": "RuntimeError: CUDA error: no kernel image is available"}]}})
    finding = matmul_finding(smoke)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == ("matrix product on the GPU failed: cuda:0 NVIDIA H100 float32: relative error "
                               "5.00e-01 > tolerance 1e-03 against the float64 CPU reference")
    assert finding.details == ("cuda:0 NVIDIA H100 bfloat16: RuntimeError: CUDA error: no kernel image is available",)


def test_a_crash_during_a_product_names_the_device() -> None:
    smoke = SmokeRun.from_run(ChildRun(("python",), {"import torch": TORCH}, ("import torch", "matmul[cuda:0]"),
                              False, -11, False, 60.0, 1.0))
    finding = matmul_finding(smoke)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == "matrix product on the GPU failed: matmul[cuda:0] crashed: killed by signal 11 (SIGSEGV)"


def test_a_crash_at_exit_after_good_products_fails_the_matmul() -> None:
    # a library's destructor kills torch's process at exit: every job would end with status -11 the same way
    products = {"device": "cuda:0", "name": "NVIDIA H100", "checks": [check("float32", 1e-6, 1e-3)]}
    smoke = canned({"import torch": TORCH, "matmul[cuda:0]": products}, returncode=-11)
    finding = matmul_finding(smoke)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == ("matrix product on the GPU failed: the child crashed at exit, after answering: "
                               "killed by signal 11 (SIGSEGV)")


@pytest.mark.parametrize("require_gpu", [False, True])
def test_no_gpu_skips_or_fails(require_gpu: bool) -> None:
    smoke = canned({"import torch": {**TORCH, "device_count": 0, "no_gpu_reason": "Found no NVIDIA driver on your system."}})
    finding = matmul_finding(smoke, require_gpu=require_gpu)
    assert finding.outcome is (Outcome.FAIL if require_gpu else Outcome.SKIP)
    assert "sees 0 GPU: Found no NVIDIA driver on your system." in finding.message
    assert all_reduce_finding(smoke, require_gpu=require_gpu).outcome is Outcome.SKIP  # needs 2: never a failure


def test_import_error_fails_with_its_text() -> None:
    smoke = canned({"import torch": {"error": "ImportError: libcublas.so.13: cannot open shared object file"}})
    finding = matmul_finding(smoke)
    assert finding.message == "import torch failed: ImportError: libcublas.so.13: cannot open shared object file"


def test_wrong_all_reduce_sum_fails() -> None:
    ranks = [{"rank": 0, "device": "cuda:0", "expected": 3.0, "seen": [3.0], "seconds": 0.001},
             {"rank": 1, "device": "cuda:1", "expected": 3.0, "seen": [2.0], "seconds": 0.001}]
    smoke = canned({"import torch": {**TORCH, "device_count": 2}, "all-reduce[nccl]": {"backend": "nccl", "ranks": ranks}})
    finding = all_reduce_finding(smoke)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == "all-reduce through nccl gave [2.0] on rank 1 (cuda:1), expected 3.0"


@pytest.mark.integration
def test_real_torch_matmul_on_the_cpu_device(cuda_venv: Path) -> None:
    site = str(venvs.site_packages(cuda_venv))
    smoke = probe_torch([], timeout=120, devices=["cpu"], paths=[site]).smoke
    finding = matmul_finding(smoke, cpu_ok=True)
    assert finding.outcome is Outcome.PASS, finding.text()
    assert finding.message.startswith("cpu CPU: float32 ")
    assert ", conv2d ok (err " in finding.message  # the convolution ran (through cuDNN on a GPU)
    assert dict(finding.facts) == {"summary": finding.message, "torch": "2.14.1+cu130", "cuda": "13.0",
                                   "cudnn": "9.24.0", "cudnn_compiled": "9.24.0", "nccl": "2.30.7"}
    # the same child, asked for the GPUs this host does not have: a skip naming torch's own reason
    skip = matmul_finding(smoke)
    assert skip.outcome is Outcome.SKIP
    assert "Found no NVIDIA driver" in skip.message


@pytest.mark.integration
def test_real_torch_all_reduce_between_two_cpu_processes(cuda_venv: Path) -> None:
    site = str(venvs.site_packages(cuda_venv))
    smoke = probe_torch([], timeout=180, devices=["cpu", "cpu"], backend="gloo", paths=[site]).smoke
    finding = all_reduce_finding(smoke, cpu_ok=True)
    assert finding.outcome is Outcome.PASS, finding.text()
    assert finding.message.startswith("gloo all-reduce of 4 MiB across cpu, cpu: ")


@pytest.mark.integration
def test_one_torch_child_runs_the_products_and_the_all_reduce(cuda_venv: Path) -> None:
    """What a run does: torch is imported once, for the products and the all-reduce."""
    site = str(venvs.site_packages(cuda_venv))
    smoke = probe_torch([], timeout=240, devices=["cpu", "cpu"], backend="gloo", paths=[site]).smoke
    assert smoke.run.begun.count("import torch") == 1
    assert matmul_finding(smoke, cpu_ok=True).outcome is Outcome.PASS
    reduce = all_reduce_finding(smoke, cpu_ok=True)
    assert reduce.outcome is Outcome.PASS, reduce.text()
    assert reduce.message.startswith("gloo all-reduce of 4 MiB across cpu, cpu: ")
    # one device: the all-reduce's workers are never started
    single = probe_torch([], timeout=120, devices=["cpu"], paths=[site]).smoke
    assert single.all_reduce is None
    assert not [step for step in single.run.begun if step.startswith("all-reduce")]


def test_a_convolution_that_cannot_load_cudnns_sub_library_fails_naming_it() -> None:
    """cuDNN opens libcudnn_cnn at the first convolution: the child's conv2d is that first one."""
    error = ("RuntimeError: Unable to load any of {libcudnn_cnn.so.9.24.0, libcudnn_cnn.so.9.24, libcudnn_cnn.so.9, "
             "libcudnn_cnn.so}")
    smoke = canned({"import torch": TORCH, "matmul[cuda:0]": {
        "device": "cuda:0", "name": "NVIDIA H100", "checks": [
            check("float32", 1e-6, 1e-3), {"dtype": "conv2d", "ok": False, "failure": error}]}})
    finding = matmul_finding(smoke)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == f"matrix product on the GPU failed: cuda:0 NVIDIA H100 conv2d: {error}"


@pytest.mark.parametrize(("loaded", "built", "fails"), [
    ("9.24.0", "9.24.0", False), ("9.25.1", "9.24.0", False), ("9.1.0", "9.24.0", True), ("8.9.7", "9.24.0", True)])
def test_the_cudnn_torch_loads_is_compared_with_the_one_it_was_built_against(loaded: str, built: str, fails: bool) -> None:
    smoke = canned({"import torch": {**TORCH, "cudnn": loaded, "cudnn_compiled": built}, "matmul[cuda:0]": {
        "device": "cuda:0", "name": "NVIDIA H100", "checks": [check("float32", 1e-6, 1e-3)]}})
    finding = matmul_finding(smoke)
    assert (finding.outcome is Outcome.FAIL) is fails
    if fails:
        assert finding.message == (f"matrix product on the GPU failed: torch loads cuDNN {loaded} but was built against "
                                   f"cuDNN {built}: install the nvidia-cudnn wheel torch declares")


def test_a_failed_torch_compile_names_the_error_and_points_at_the_triton_items() -> None:
    failure = "BackendCompilerFailed: backend='inductor' raised: RuntimeError: Failed to find C compiler."
    smoke = canned({"import torch": TORCH, "compile": {"device": "cuda:0", "failure": failure}})
    finding = compile_finding(smoke)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == f"torch.compile failed on cuda:0: {failure}"
    assert finding.fix.startswith("the triton[...] items name what torch.compile lacks")
    ok = canned({"import torch": TORCH, "compile": {"device": "cuda:0", "ok": True, "error": 1e-7, "seconds": 4.2}})
    assert compile_finding(ok).message == "torch.compile built and ran its kernel on cuda:0 in 4.2 s (err 1.0e-07 against eager mode)"


@pytest.mark.integration
def test_real_torch_compile_on_the_cpu_device(cuda_venv: Path) -> None:
    """--cuda-deps-compile's path through the real torch: inductor builds a kernel (a C++ one on the CPU)."""
    run = probe_torch([], compile=True, devices=["cpu"], timeout=300, paths=[str(venvs.site_packages(cuda_venv))])
    finding = compile_finding(run.smoke, cpu_ok=True)
    assert finding.outcome is Outcome.PASS, finding.text()
    assert finding.message.startswith("torch.compile built and ran its kernel on cpu in ")


def test_a_torch_child_started_early_imports_torch_at_once_then_loads_what_it_is_sent(tmp_path: Path,
                                                                                     gcc: str) -> None:
    """start_torch starts the child before anything is known, and it imports torch at once; probe_torch sends the
    libraries to ask for, which the same child opens after the import."""
    good, noisy = misbehaving(gcc, tmp_path, "good"), misbehaving(gcc, tmp_path, "noisy")
    steps = [LoadStep("root-lib", str(good)), *library_steps([("libnoisy.so.1", noisy)])]
    empty = tmp_path / "site"  # no torch here: its import fails, and the libraries are opened after it
    empty.mkdir()
    running = start_torch(timeout=60, paths=[str(empty)])
    run = probe_torch(steps, timeout=60, paths=[str(empty)], started=running)
    assert run.smoke.run.begun == ("import torch", "root-lib", "libnoisy.so.1")  # one child, in this order
    assert run.smoke.run.command == running.command
    assert all(isinstance(answer, Loaded) and answer.ok for answer in run.loads.values()), run.loads
    assert run.smoke.torch is not None
    assert run.smoke.torch.error is not None
    assert run.smoke.torch.error.startswith("ModuleNotFoundError: No module named 'torch'")


FAKE_TORCH = """import ctypes, types
ctypes.CDLL({library!r})  # what torch/__init__.py does with its CUDA libraries: open them by path
__version__ = "2.14.1+cu130"
version = types.SimpleNamespace(cuda="13.0")
cuda = types.SimpleNamespace(device_count=lambda: 0, init=lambda: None, nccl=types.SimpleNamespace(version=lambda: None))
backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(version=lambda: None))
"""


def test_a_library_the_import_mapped_is_answered_from_where_it_was_mapped(tmp_path: Path, gcc: str) -> None:
    """The truth: after `import torch`, the loader's own answer for each soname, not a dlopen of the prediction."""
    site = tmp_path / "site"
    mapped = misbehaving(gcc, site / "mapped", "good")
    elsewhere = misbehaving(gcc, site / "elsewhere", "good")  # where a static model might have predicted it
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(FAKE_TORCH.format(library=str(mapped)))
    run = probe_torch(library_steps([("libgood.so.1", elsewhere)]), timeout=60, paths=[str(site)])
    assert run.smoke.torch is not None
    assert run.smoke.torch.error is None, run.smoke.torch.error
    assert str(mapped) in run.smoke.torch.loaded
    assert run.loads["libgood.so.1"] == Loaded(True, str(mapped), "already mapped")


def test_a_torch_child_whose_run_ends_before_the_rest_is_sent_does_nothing_more(tmp_path: Path) -> None:
    running = start_torch(timeout=60, paths=[str(tmp_path)])
    run = running.wait()  # the parent gave up: the child's stdin ends after the first part
    assert run.ok, (run.trouble(), run.stderr)
    assert run.begun == ("import torch",)


def test_a_torch_child_has_its_timeout_from_the_last_part_of_its_request(tmp_path: Path, gcc: str) -> None:
    """Started ahead, it waits for the parent's walk (seconds on a large environment): not its own time."""
    running = start_torch(timeout=1.0, paths=[str(tmp_path)])
    time.sleep(1.5)  # the parent plans for longer than the child's timeout
    run = probe_torch(library_steps([("libgood.so.1", misbehaving(gcc, tmp_path, "good"))]), timeout=1.0,
                      paths=[str(tmp_path)], started=running)
    assert run.smoke.run.trouble() is None, run.smoke.run.stderr
    assert run.smoke.run.elapsed > 1.5
