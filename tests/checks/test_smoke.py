"""The smoke[...] items: the torch child's answers (canned here) worded: the products and their errors, the
all-reduce, cuDNN's versions, torch.compile; a crash or no GPU.  The real torch child is tests/probes/test_torch.py's."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.smoke import all_reduce_finding, compile_finding, matmul_finding
from pytest_cudadeps.probes.runner import ChildRun
from pytest_cudadeps.probes.torch import SmokeRun

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
