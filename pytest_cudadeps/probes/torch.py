"""The smoke test: torch really computes on each GPU, with the right numbers, at a plausible speed.

In a child (:mod:`pytest_cudadeps.probes.child.torch`): ``import torch``, then per visible GPU
a 1024x1024 product in float32 (and bfloat16/float16 where the GPU has them) compared
with a float64 CPU reference, timed; torch's CUDA, cuDNN and NCCL versions are kept as
facts.  With two or more GPUs an all-reduce across two processes through NCCL.  The
``devices`` argument puts the CPU in place of the GPUs, for the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped, unavailable
from pytest_cudadeps.engine.installers import reinstall_command
from pytest_cudadeps.probes.child.protocol import (
    AllReduceAnswer,
    Compiled,
    Imported,
    Loaded,
    MatmulDevice,
    ProtocolError,
    SmokeRequest,
    TorchFacts,
    decode,
)
from pytest_cudadeps.probes.load import LoadResult, LoadStep, load_request, torch_steps
from pytest_cudadeps.probes.runner import Blame, ChildGroup, ChildRun, JsonObject, Running, decoded, run_steps
from pytest_cudadeps.tables.drivers import version_tuple

if TYPE_CHECKING:
    from pytest_cudadeps.engine.distributions import Distribution, Environment

CHECK = "smoke"
MODULE = "pytest_cudadeps.probes.child.torch"
FIX_IMPORT = "run `python -c 'import torch'` to see the whole error; the load[...] and linkage items name the library"


@dataclass(frozen=True)
class SmokeRun:
    """The child's answers, decoded: torch's facts (``import torch``), each device's products, the all-reduce.

    ``garbled`` names an answer that did not decode (it counts as the child's trouble).
    """

    run: ChildRun
    torch: TorchFacts | None
    matmul: tuple[MatmulDevice, ...]
    all_reduce: AllReduceAnswer | None
    garbled: str | None = None
    compiled: Compiled | None = None

    @classmethod
    def from_run(cls, run: ChildRun) -> SmokeRun:
        try:
            torch = decode(TorchFacts, run.results["import torch"]) if "import torch" in run.results else None
            matmul = tuple(decode(MatmulDevice, data) for name, data in run.results.items() if name.startswith("matmul["))
            reduce = next((decode(AllReduceAnswer, data) for name, data in run.results.items()
                           if name.startswith("all-reduce[")), None)
            compiled = decode(Compiled, run.results["compile"]) if "compile" in run.results else None
        except ProtocolError as exc:
            return cls(run, None, (), None, f"answered garbled data ({exc})")
        return cls(run, torch, matmul, reduce, compiled=compiled)

    def trouble(self) -> str | None:
        return self.run.trouble() or self.garbled


@dataclass(frozen=True)
class TorchRun:
    """The torch child's answers: each library it loaded before importing torch, the smoke run, and each
    companion package imported beside torch (its exception, None when it worked, or how the child died)."""

    loads: dict[str, LoadResult]
    smoke: SmokeRun
    imports: dict[str, Imported | Blame]


def probe_torch(
    steps: Sequence[LoadStep],
    *,
    imports: Sequence[str] = (),
    compile: bool = False,
    timeout: float,
    devices: Sequence[str] | None = None,
    backend: str = "nccl",
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
    started: Running | None = None,
) -> TorchRun:
    """The one child that imports torch: ``steps`` loaded one by one first (as the load probe does:
    torch then finds its libraries mapped, and pays nothing twice), then torch for the products and,
    with two or more devices, the all-reduce.  A library that kills or hangs the child is blamed and
    a new child goes on with the libraries after it, then torch.

    ``started`` is the child :func:`start_torch` began, already sent the first of ``steps`` (torch's own
    libraries, before the linkage walk was done); it is sent the rest.
    """
    loads = load_request(steps)
    if started is not None and [step.name for step in steps[:len(started.steps)]] != list(started.steps):
        started.wait()  # it was sent other steps than these begin with: not this run's child (never expected)
        started = None

    def request(pending: list[str], done: Mapping[str, JsonObject]) -> SmokeRequest:
        return SmokeRequest(tuple(devices) if devices else None, backend, loads=loads(pending, done),
                            imports=tuple(imports), compile=compile)

    runs = run_steps(MODULE, [step.name for step in steps], request, timeout=timeout, paths=paths, env=env,
                     inhibit_ld_cache=inhibit_ld_cache, group=group, then=True, started=started)
    last = runs.last
    assert last is not None  # then=True: a child always ran for torch
    answered = {name: decoded(Imported, f"import {name}", last.results,
                              {last.current: Blame(last.trouble() or "", last.stderr_tail())} if last.current else {})
                for name in imports}
    return TorchRun({step.name: runs.answer(Loaded, step.name) for step in steps}, SmokeRun.from_run(last), answered)


def start_torch(
    *,
    timeout: float,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
) -> Running:
    """Start the torch child now, before its work is known: :func:`send_steps` and :func:`probe_torch` send it.

    Its Python starts while the parent imports the engine and reads the environment, and it loads
    torch's own libraries (a third of ``import torch``) while the parent walks the linkage: the whole
    run then takes about one ``import torch``.
    """
    return Running(MODULE, SmokeRequest(more=True), timeout=timeout, paths=paths, env=env,
                   inhibit_ld_cache=inhibit_ld_cache, group=group)


def send_steps(running: Running, steps: Sequence[LoadStep]) -> None:
    """The first libraries for a started torch child to load (torch's own); more follow."""
    names = [step.name for step in steps]
    running.send(SmokeRequest(loads=load_request(steps)(names, {}), more=True), steps=names)


def torch_own_steps(env: Environment, dist: Distribution, cuda: str | None) -> list[LoadStep]:
    """The first load steps of a CUDA torch (``cuda``: the CUDA version it was built for), as its import loads
    them: known from the distribution alone, before the linkage walk."""
    if dist.key != "torch" or not cuda:
        return []
    # a CUDA build loads these whatever is on disk: one that is missing fails its item, never vanishes
    package = env.package_dir(dist, "torch") or dist.location / "torch"
    return torch_steps(package, reinstall_command(dist.installer, f"{dist.name}=={dist.version}"))


def send_torch_own_steps(env: Environment, roots: Sequence[str], running: Running) -> None:
    """A CUDA torch's own libraries, for the started torch child to load while the environment is walked:
    read from the scan alone (torch's distribution and ``torch/version.py``); :class:`Probes` sends the rest.
    Nothing is sent when torch is not a root (``roots``: the ones named, none for the default)."""
    from pytest_cudadeps.engine.build import Build, read_build

    torch = env.get("torch")
    if torch is None or (roots and "torch" not in roots):
        return
    build = read_build(env, torch)
    send_steps(running, torch_own_steps(env, torch, build.cuda if isinstance(build, Build) else None))


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
    if not cpu_ok:
        early = _before_gpu(smoke, subject, require_gpu)
        if early is not None:
            return early
    elif smoke.torch is None or smoke.torch.error is not None:
        error = smoke.torch.error if smoke.torch is not None else smoke.trouble()
        return failed(CHECK, subject, f"import torch failed: {error}", fix=FIX_IMPORT)
    problems: list[str] = []
    summary: list[str] = []
    for device in smoke.matmul:
        label = f"{device.device} {device.name}"
        parts = []
        for check in device.checks:
            if check.failure is not None:
                problems.append(f"{label} {check.dtype}: {check.failure}")
            elif not check.ok:
                problems.append(f"{label} {check.dtype}: relative error {check.error or 0:.2e} "
                                f"> tolerance {check.tolerance or 0:.0e} against the float64 CPU reference")
            elif check.gflops is None:  # the convolution: no rate worth printing
                parts.append(f"{check.dtype} ok (err {check.error or 0:.1e})")
            else:
                parts.append(f"{check.dtype} {check.gflops:.0f} GFLOP/s (err {check.error or 0:.1e})")
        summary.append(f"{label}: {', '.join(parts)}")
    problems += _cudnn_problems(smoke.torch) if smoke.matmul else []
    trouble = smoke.trouble()
    at_work = [step for step in smoke.run.unfinished if step.startswith("matmul[")]
    # the all-reduce's own trouble is its item's, not this one's; a crash at exit, after every answer, is this one's
    if trouble and (at_work or not smoke.matmul or smoke.run.finished):
        problems.insert(0, f"{', '.join(at_work) or smoke.run.current or 'the child'} {trouble}")
        problems.extend(smoke.run.stderr_tail())
    facts = _versions(smoke.torch)
    if problems:
        return failed(CHECK, subject, f"matrix product on the GPU failed: {problems[0]}", *problems[1:],
                      fix="run the same product by hand to see the full error; 'no kernel image' means the arch[...] "
                          "item's fix, a numeric error a broken cuBLAS (reinstall nvidia-cublas) or a faulty GPU",
                      **facts)
    versions = ", ".join(f"{k} {v}" for k, v in facts.items())
    return passed(CHECK, subject, f"{'; '.join(summary)} [{versions}]", **facts)


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
    """``smoke[all-reduce]``: two processes sum a tensor through torch.distributed (NCCL on GPUs)."""
    subject = "all-reduce"
    if not cpu_ok:
        early = _before_gpu(smoke, subject, require_gpu, gpus_needed=2)
        if early is not None:
            return early
    step, trouble = smoke.all_reduce, smoke.trouble()
    if trouble or step is None:
        where = f" (the child was in {smoke.run.current})" if trouble and smoke.run.current and step is None else ""
        return failed(CHECK, subject, f"all-reduce {trouble or 'did not run'}{where}", *smoke.run.stderr_tail(),
                      fix="raise --cuda-deps-timeout if the host is just slow; NCCL_DEBUG=INFO shows where NCCL stops")
    if step.skipped is not None:
        return skipped(CHECK, subject, step.skipped)
    if step.failure is not None:
        return failed(CHECK, subject, f"all-reduce through {step.backend} failed: {step.failure}",
                      fix="rerun with NCCL_DEBUG=INFO to see why NCCL fails; check that nvidia-nccl matches torch")
    wrong = [r for r in step.ranks if r.seen != (r.expected,)]
    if wrong:
        r = wrong[0]
        return failed(CHECK, subject, f"all-reduce through {step.backend} gave {list(r.seen)} on rank {r.rank} "
                      f"({r.device}), expected {r.expected}",
                      fix="the communication library returns wrong sums: reinstall nvidia-nccl, check the GPU links "
                          "(nvidia-smi topo -m)")
    devices = ", ".join(r.device for r in step.ranks)
    slowest = max(r.seconds for r in step.ranks)
    return passed(CHECK, subject, f"{step.backend} all-reduce of 4 MiB across {devices}: {slowest * 1e3:.2f} ms",
                  backend=step.backend)
