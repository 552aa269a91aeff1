"""The smoke test: torch really computes on each GPU, with the right numbers, at a plausible speed.

In a child (:mod:`pytest_cudadeps.probes.smoke`): ``import torch``, then per visible GPU
a 1024x1024 product in float32 (and bfloat16/float16 where the GPU has them) compared
with a float64 CPU reference, timed; torch's CUDA, cuDNN and NCCL versions are kept as
facts.  With two or more GPUs an all-reduce across two processes through NCCL.  The
``devices`` argument puts the CPU in place of the GPUs, for the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .children import ChildRun, run_probe
from .findings import Finding, failed, passed, skipped, unavailable

CHECK = "smoke"
FIX_IMPORT = "run `python -c 'import torch'` to see the whole error; the load[...] and linkage items name the library"


@dataclass(frozen=True)
class SmokeRun:
    """The child's answer: torch's facts (``import torch`` step) and the per-step results."""

    run: ChildRun

    @property
    def torch(self) -> Mapping[str, Any]:
        return self.run.results.get("import torch", {})

    def steps(self, prefix: str) -> list[Mapping[str, Any]]:
        return [data for name, data in self.run.results.items() if name.startswith(prefix)]


def probe_smoke(
    mode: str = "matmul",
    *,
    timeout: float,
    devices: Sequence[str] | None = None,
    backend: str = "nccl",
    size: int = 1024,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
) -> SmokeRun:
    """Run the smoke child. Under ``inhibit_ld_cache`` the child runs as ``ld.so --inhibit-cache``;
    the two all-reduce workers it spawns are plain interpreters and do see the cache."""
    request = {"mode": mode, "devices": list(devices) if devices else None, "backend": backend, "size": size}
    return SmokeRun(run_probe("pytest_cudadeps.probes.smoke", request, timeout=timeout, paths=paths, env=env,
                              inhibit_ld_cache=inhibit_ld_cache))


def _versions(torch: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(torch.get(key)) for key in ("torch", "cuda", "cudnn", "nccl") if key in torch}


def _before_gpu(smoke: SmokeRun, subject: str, require_gpu: bool, gpus_needed: int = 1) -> Finding | None:
    """The finding when torch cannot be imported or there are not enough GPUs; None to go on."""
    run, torch = smoke.run, smoke.torch
    if "import torch" not in run.results:
        trouble = run.trouble() or "ended without a word"
        return failed(CHECK, subject, f"import torch {trouble}", *run.stderr_tail(), fix=FIX_IMPORT)
    if "error" in torch:
        return failed(CHECK, subject, f"import torch failed: {torch['error']}", fix=FIX_IMPORT)
    count = int(torch.get("device_count") or 0)
    if count < gpus_needed:
        reason = (f"torch {torch.get('torch')} (CUDA {torch.get('cuda')}) sees {count} GPU"
                  + (f": {torch['no_gpu_reason']}" if torch.get("no_gpu_reason") else "")
                  + (f"; this check needs {gpus_needed}" if gpus_needed > 1 else ""))
        # a runner with one GPU is no failure of a check that needs two
        return unavailable(CHECK, subject, reason, require_gpu=require_gpu and gpus_needed == 1,
                           fix="check `nvidia-smi` and CUDA_VISIBLE_DEVICES; a CPU-only torch needs the CUDA build",
                           **_versions(torch))
    return None


def matmul_finding(smoke: SmokeRun, *, require_gpu: bool = False, cpu_ok: bool = False) -> Finding:
    """``smoke[matmul]``: every product within tolerance on every device; GFLOP/s in the summary."""
    subject = "matmul"
    if not cpu_ok:
        early = _before_gpu(smoke, subject, require_gpu)
        if early is not None:
            return early
    elif "error" in smoke.torch or "import torch" not in smoke.run.results:
        return failed(CHECK, subject, f"import torch failed: {smoke.torch.get('error') or smoke.run.trouble()}",
                      fix=FIX_IMPORT)
    problems: list[str] = []
    summary: list[str] = []
    for device in smoke.steps("matmul["):
        label = f"{device['device']} {device['name']}"
        parts = []
        for check in device["checks"]:
            if "failure" in check:
                problems.append(f"{label} {check['dtype']}: {check['failure']}")
            elif not check["ok"]:
                problems.append(f"{label} {check['dtype']}: relative error {check['error']:.2e} "
                                f"> tolerance {check['tolerance']:.0e} against the float64 CPU reference")
            else:
                parts.append(f"{check['dtype']} {check['gflops']:.0f} GFLOP/s (err {check['error']:.1e})")
        summary.append(f"{label}: {', '.join(parts)}")
    trouble = smoke.run.trouble()
    if trouble:
        problems.insert(0, f"{smoke.run.current or 'the child'} {trouble}")
        problems.extend(smoke.run.stderr_tail())
    facts = _versions(smoke.torch)
    if problems:
        return failed(CHECK, subject, f"matrix product on the GPU failed: {problems[0]}", *problems[1:],
                      fix="run the same product by hand to see the full error; 'no kernel image' means the arch[...] "
                          "item's fix, a numeric error a broken cuBLAS (reinstall nvidia-cublas) or a faulty GPU",
                      **facts)
    versions = ", ".join(f"{k} {v}" for k, v in facts.items())
    return passed(CHECK, subject, f"{'; '.join(summary)} [{versions}]", **facts)


def all_reduce_finding(smoke: SmokeRun, *, require_gpu: bool = False, cpu_ok: bool = False) -> Finding:
    """``smoke[all-reduce]``: two processes sum a tensor through torch.distributed (NCCL on GPUs)."""
    subject = "all-reduce"
    if not cpu_ok:
        early = _before_gpu(smoke, subject, require_gpu, gpus_needed=2)
        if early is not None:
            return early
    steps = smoke.steps("all-reduce[")
    trouble = smoke.run.trouble()
    if trouble or not steps:
        return failed(CHECK, subject, f"all-reduce {trouble or 'did not run'}", *smoke.run.stderr_tail(),
                      fix="raise --cuda-deps-timeout if the host is just slow; NCCL_DEBUG=INFO shows where NCCL stops")
    step = steps[0]
    if "skipped" in step:
        return skipped(CHECK, subject, str(step["skipped"]))
    if "failure" in step:
        return failed(CHECK, subject, f"all-reduce through {step['backend']} failed: {step['failure']}",
                      fix="rerun with NCCL_DEBUG=INFO to see why NCCL fails; check that nvidia-nccl matches torch")
    wrong = [r for r in step["ranks"] if r["seen"] != [r["expected"]]]
    if wrong:
        r = wrong[0]
        return failed(CHECK, subject, f"all-reduce through {step['backend']} gave {r['seen']} on rank {r['rank']} "
                      f"({r['device']}), expected {r['expected']}",
                      fix="the communication library returns wrong sums: reinstall nvidia-nccl, check the GPU links "
                          "(nvidia-smi topo -m)")
    devices = ", ".join(r["device"] for r in step["ranks"])
    slowest = max(float(r["seconds"]) for r in step["ranks"])
    return passed(CHECK, subject, f"{step['backend']} all-reduce of 4 MiB across {devices}: {slowest * 1e3:.2f} ms",
                  backend=str(step["backend"]))
