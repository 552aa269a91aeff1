"""The ``smoke[...]`` findings: torch imported in the torch child, its products on each GPU against the CPU,
the cuDNN it loads against the one it was built with, ``torch.compile``, and the NCCL all-reduce."""

from __future__ import annotations

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped, unavailable
from pytest_cudadeps.probes.child.protocol import AllReduceAnswer, MatmulCheck, MatmulDevice, TorchFacts
from pytest_cudadeps.probes.torch import SmokeRun
from pytest_cudadeps.tables.drivers import version_tuple

CHECK = "smoke"


FIX_IMPORT = "run `python -c 'import torch'` to see the whole error; the load[...] and linkage items name the library"


def _versions(torch: TorchFacts | None) -> dict[str, str]:
    if torch is None:
        return {}
    found = {"torch": torch.torch, "cuda": torch.cuda, "cudnn": torch.cudnn, "nccl": torch.nccl,
             "cudnn_compiled": torch.cudnn_compiled}
    return {key: str(value) for key, value in found.items() if value is not None}


def _before_gpu(smoke: SmokeRun, subject: str, require_gpu: bool, gpus_needed: int = 1) -> Finding | None:
    """The finding when torch cannot be imported or there are not enough GPUs; None to go on."""
    torch = smoke.torch
    if torch is None:
        trouble = smoke.trouble() or "ended without a word"
        return failed(CHECK, subject, f"import torch {trouble}", *smoke.run.stderr_tail(), fix=FIX_IMPORT)
    if torch.error is not None:
        return failed(CHECK, subject, f"import torch failed: {torch.error}", fix=FIX_IMPORT)
    if torch.device_count < gpus_needed:
        reason = (f"torch {torch.torch} (CUDA {torch.cuda}) sees {torch.device_count} GPU"
                  + (f": {torch.no_gpu_reason}" if torch.no_gpu_reason else "")
                  + (f"; this check needs {gpus_needed}" if gpus_needed > 1 else ""))
        # a runner with one GPU is no failure of a check that needs two
        return unavailable(CHECK, subject, reason, require_gpu=require_gpu and gpus_needed == 1,
                           fix="check `nvidia-smi` and CUDA_VISIBLE_DEVICES; a CPU-only torch needs the CUDA build",
                           **_versions(torch))
    return None


def matmul_finding(smoke: SmokeRun, *, require_gpu: bool = False, cpu_ok: bool = False) -> Finding:
    """``smoke[matmul]``: every product within tolerance on every device; GFLOP/s in the summary."""
    subject = "matmul"
    early = _before_matmul(smoke, subject, require_gpu, cpu_ok)
    if early is not None:
        return early
    problems = _matmul_problems(smoke)
    facts = _versions(smoke.torch)
    if problems:
        return failed(CHECK, subject, f"matrix product on the GPU failed: {problems[0]}", *problems[1:],
                      fix="run the same product by hand to see the full error; 'no kernel image' means the arch[...] "
                          "item's fix, a numeric error a broken cuBLAS (reinstall nvidia-cublas) or a faulty GPU",
                      **facts)
    summary = "; ".join(_device_summary(device) for device in smoke.matmul)
    versions = ", ".join(f"{k} {v}" for k, v in facts.items())
    return passed(CHECK, subject, f"{summary} [{versions}]", **facts)


def _before_matmul(smoke: SmokeRun, subject: str, require_gpu: bool, cpu_ok: bool) -> Finding | None:
    """:func:`_before_gpu`; with ``cpu_ok`` (products on the CPU will do) only a failed ``import torch`` stops it."""
    if not cpu_ok:
        return _before_gpu(smoke, subject, require_gpu)
    if smoke.torch is None or smoke.torch.error is not None:
        error = smoke.torch.error if smoke.torch is not None else smoke.trouble()
        return failed(CHECK, subject, f"import torch failed: {error}", fix=FIX_IMPORT)
    return None


def _matmul_problems(smoke: SmokeRun) -> list[str]:
    """The failed products in device order, then a cuDNN mismatch; the child's own trouble first when it is this item's."""
    problems = [problem for device in smoke.matmul for problem in _device_problems(device)]
    problems += _cudnn_problems(smoke.torch) if smoke.matmul else []
    trouble = _child_trouble(smoke)
    return [*trouble[:1], *problems, *trouble[1:]]


def _child_trouble(smoke: SmokeRun) -> list[str]:
    """The step the child ended in with its trouble, then its stderr's tail; [] when that is no trouble of this item."""
    trouble = smoke.trouble()
    at_work = [step for step in smoke.run.unfinished if step.startswith("matmul[")]
    # the all-reduce's own trouble is its item's, not this one's; a crash at exit, after every answer, is this one's
    if not trouble or not (at_work or not smoke.matmul or smoke.run.finished):
        return []
    return [f"{', '.join(at_work) or smoke.run.current or 'the child'} {trouble}", *smoke.run.stderr_tail()]


def _device_problems(device: MatmulDevice) -> list[str]:
    label = f"{device.device} {device.name}"
    return [f"{label} {check.dtype}: {problem}" for check in device.checks
            if (problem := _check_problem(check)) is not None]


def _check_problem(check: MatmulCheck) -> str | None:
    """Why one product failed: the exception it raised, or its error beyond tolerance; None when it is right."""
    if check.failure is not None:
        return check.failure
    if not check.ok:
        return (f"relative error {check.error or 0:.2e} > tolerance {check.tolerance or 0:.0e} "
                f"against the float64 CPU reference")
    return None


def _device_summary(device: MatmulDevice) -> str:
    """``cuda:0 NAME: float32 N GFLOP/s (err E), ...`` for the products that are right."""
    parts = [_check_summary(check) for check in device.checks if _check_problem(check) is None]
    return f"{device.device} {device.name}: {', '.join(parts)}"


def _check_summary(check: MatmulCheck) -> str:
    if check.gflops is None:  # the convolution: no rate worth printing
        return f"{check.dtype} ok (err {check.error or 0:.1e})"
    return f"{check.dtype} {check.gflops:.0f} GFLOP/s (err {check.error or 0:.1e})"


def compile_finding(smoke: SmokeRun, *, require_gpu: bool = False, cpu_ok: bool = False) -> Finding:
    """``smoke[compile]`` (``--cuda-deps-compile``): torch.compile builds and runs a kernel on the first GPU,
    with eager mode's numbers."""
    subject = "compile"
    if not cpu_ok:
        early = _before_gpu(smoke, subject, require_gpu)
        if early is not None:
            return early
    answer = smoke.compiled
    if answer is None:
        trouble = smoke.trouble() or "did not run"
        where = f" (the child was in {smoke.run.current})" if smoke.run.current and smoke.run.current != "compile" else ""
        return failed(CHECK, subject, f"torch.compile {trouble}{where}", *smoke.run.stderr_tail(), fix=FIX_COMPILE)
    if answer.failure is not None:
        return failed(CHECK, subject, f"torch.compile failed on {answer.device}: {answer.failure}", fix=FIX_COMPILE)
    if not answer.ok:
        return failed(CHECK, subject, f"torch.compile on {answer.device} gave numbers {answer.error or 0:.2e} away from "
                      f"eager mode's", fix="report it with `TORCH_LOGS=output_code` to PyTorch; run without compile meanwhile")
    return passed(CHECK, subject, f"torch.compile built and ran its kernel on {answer.device} in {answer.seconds or 0:.1f} s "
                  f"(err {answer.error or 0:.1e} against eager mode)")


FIX_COMPILE = ("the triton[...] items name what torch.compile lacks (C compiler, Python.h, libcuda, ptxas); "
               "`TORCH_LOGS=+dynamo,+inductor` shows the whole error")


def _cudnn_problems(torch: TorchFacts | None) -> list[str]:
    """The cuDNN torch loads against the one it was built with: another major, or an older release, fails
    its first convolution (jax-ml/jax#18032 says it the same way: "Found cuDNN version X, but built against Y")."""
    if torch is None or not torch.cudnn or not torch.cudnn_compiled or torch.cudnn.startswith("error"):
        return []
    loaded, built = version_tuple(torch.cudnn), version_tuple(torch.cudnn_compiled)
    if loaded[:1] != built[:1] or loaded < built:
        return [f"torch loads cuDNN {torch.cudnn} but was built against cuDNN {torch.cudnn_compiled}: install the "
                f"nvidia-cudnn wheel torch declares"]
    return []


def all_reduce_finding(smoke: SmokeRun, *, require_gpu: bool = False, cpu_ok: bool = False) -> Finding:
    """``smoke[all-reduce]``: two processes sum a tensor through torch.distributed (NCCL on GPUs).

    The rules in order: the child's trouble, the step's skip, its failure, a wrong sum; none of them: passed.
    """
    subject = "all-reduce"
    if not cpu_ok:
        early = _before_gpu(smoke, subject, require_gpu, gpus_needed=2)
        if early is not None:
            return early
    step, trouble = smoke.all_reduce, smoke.trouble()
    if trouble or step is None:
        return _all_reduce_not_run(smoke, subject, step, trouble)
    for rule in (_all_reduce_skipped, _all_reduce_failed, _wrong_sum):
        found = rule(step, subject)
        if found is not None:
            return found
    devices = ", ".join(r.device for r in step.ranks)
    slowest = max(r.seconds for r in step.ranks)
    return passed(CHECK, subject, f"{step.backend} all-reduce of 4 MiB across {devices}: {slowest * 1e3:.2f} ms",
                  backend=step.backend)


def _all_reduce_not_run(smoke: SmokeRun, subject: str, step: AllReduceAnswer | None, trouble: str | None) -> Finding:
    where = f" (the child was in {smoke.run.current})" if trouble and smoke.run.current and step is None else ""
    return failed(CHECK, subject, f"all-reduce {trouble or 'did not run'}{where}", *smoke.run.stderr_tail(),
                  fix="raise --cuda-deps-timeout if the host is just slow; NCCL_DEBUG=INFO shows where NCCL stops")


def _all_reduce_skipped(step: AllReduceAnswer, subject: str) -> Finding | None:
    return None if step.skipped is None else skipped(CHECK, subject, step.skipped)


def _all_reduce_failed(step: AllReduceAnswer, subject: str) -> Finding | None:
    if step.failure is None:
        return None
    return failed(CHECK, subject, f"all-reduce through {step.backend} failed: {step.failure}",
                  fix="rerun with NCCL_DEBUG=INFO to see why NCCL fails; check that nvidia-nccl matches torch")


def _wrong_sum(step: AllReduceAnswer, subject: str) -> Finding | None:
    """The first rank whose sum is not the expected one."""
    rank = next((rank for rank in step.ranks if rank.seen != (rank.expected,)), None)
    if rank is None:
        return None
    return failed(CHECK, subject, f"all-reduce through {step.backend} gave {list(rank.seen)} on rank {rank.rank} "
                  f"({rank.device}), expected {rank.expected}",
                  fix="the communication library returns wrong sums: reinstall nvidia-nccl, check the GPU links "
                      "(nvidia-smi topo -m)")
