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
from pytest_cudadeps.probes.load import LoadResult, LoadStep, load_request, probe_loads, torch_steps
from pytest_cudadeps.probes.runner import Blame, ChildGroup, ChildRun, JsonObject, Running, decoded, run_steps

if TYPE_CHECKING:
    from pytest_cudadeps.engine.distributions import Distribution, Environment
MODULE = "pytest_cudadeps.probes.child.torch"


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
    """The torch child's answers: ``import torch`` and the products (the smoke run), each library asked for after
    the import (``loads``), and each companion package imported beside torch (its exception, None when it worked,
    or how the child died)."""

    loads: dict[str, LoadResult]
    smoke: SmokeRun
    imports: dict[str, Imported | Blame]

    @property
    def import_killed_the_child(self) -> bool:
        """The child died (crashed, hung, exited) inside ``import torch``, not in a step after it."""
        return self.smoke.torch is None and self.smoke.run.current == IMPORT_STEP


IMPORT_STEP = "import torch"


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
    """The one child that imports torch, first, as the user's job does; then each of ``steps`` is asked for in
    that process (a library the import mapped is answered from where it was mapped: the truth the linkage walk
    is held against), then the products and, with two or more devices, the all-reduce.  A library that kills or
    hangs the child is blamed and a new child (which imports torch again) goes on with the libraries after it.
    When ``import torch`` itself kills the child, each library is then opened alone, in children of the load
    probe, so that the one that crashes is named.

    ``started`` is the child :func:`start_torch` began: it is importing torch already, and is sent the request.
    """
    loads = load_request(steps)

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
    found = TorchRun({step.name: runs.answer(Loaded, step.name) for step in steps}, SmokeRun.from_run(last), answered)
    if found.import_killed_the_child and steps:
        alone = probe_loads(steps, timeout=timeout, paths=paths, env=env, inhibit_ld_cache=inhibit_ld_cache,
                            group=group)
        return TorchRun(alone, found.smoke, answered)
    return found


def start_torch(
    *,
    timeout: float,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
) -> Running:
    """Start the torch child now, before its work is known: it imports torch at once, while the parent imports
    the engine and reads the environment; :func:`probe_torch` sends it the rest.  The whole run then takes
    about one ``import torch``."""
    return Running(MODULE, SmokeRequest(more=True), timeout=timeout, paths=paths, env=env,
                   inhibit_ld_cache=inhibit_ld_cache, group=group)


def torch_own_steps(env: Environment, dist: Distribution, cuda: str | None) -> list[LoadStep]:
    """The first load steps of a CUDA torch (``cuda``: the CUDA version it was built for), as its import loads
    them: known from the distribution alone, before the linkage walk."""
    if dist.key != "torch" or not cuda:
        return []
    # a CUDA build loads these whatever is on disk: one that is missing fails its item, never vanishes
    package = env.package_dir(dist, "torch") or dist.location / "torch"
    return torch_steps(package, reinstall_command(dist.installer, f"{dist.name}=={dist.version}"))


