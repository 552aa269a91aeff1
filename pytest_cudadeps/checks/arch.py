"""The ``arch[ROOT]`` finding: every GPU's compute capability is among the architectures compiled into the
root's libraries (their ``.nv_fatbin``, :mod:`pytest_cudadeps.engine.fatbin`), as cubin or as PTX to JIT."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_cudadeps.checks.findings import Finding, failed, passed
from pytest_cudadeps.engine.fatbin import SECTION, Architectures

CHECK = "arch"


def arch_finding(
    subject: str,
    libraries: Sequence[Architectures],
    gpus: Sequence[tuple[str, tuple[int, int]]],
    primary: str | None = None,
) -> Finding:
    """Every GPU (name, capability) can run the code of the root's libraries.

    With ``primary`` (torch: ``libtorch_cuda.so``, whose architectures are what
    ``torch.cuda.get_arch_list()`` reports and what torch warns about), only that library
    decides: secondary libraries are built for fewer architectures on purpose (torch 2.14.1
    cu130 ships ``libtorch_cuda_linalg.so`` without sm_75), so their gaps are reported as a
    note on a passing item, not as a failure that would flag every Turing GPU.
    """
    carrying = [lib for lib in libraries if lib.cubin or lib.ptx]
    if not carrying:
        return _no_gpu_code(subject, libraries)
    fit = _Fit([lib for lib in carrying if lib.path.name == primary] or carrying)
    for name, capability in gpus:
        for lib in carrying:
            fit.add(name, capability, lib)
    architectures = fit.deciding[0].describe()
    if fit.first is not None:
        name, cc = fit.first
        return failed(
            CHECK, subject, f"{subject} has no code for {name} (compute capability {cc})", *fit.problems, *fit.notes,
            fix=f"install a {subject} build compiled for compute capability {cc} (a newer release, or a "
                f"source build with TORCH_CUDA_ARCH_LIST={cc})",
            architectures=architectures,
        )
    summary = "; ".join(fit.covered)
    if fit.notes:
        summary += f"; note, kernels of these libraries would be missing: {' | '.join(fit.notes)}"
    return passed(CHECK, subject, summary, architectures=architectures)


def _no_gpu_code(subject: str, libraries: Sequence[Architectures]) -> Finding:
    names = ", ".join(lib.path.name for lib in libraries) or "none"
    return failed(CHECK, subject, f"no GPU code found in the {SECTION} sections of {subject}'s libraries ({names})",
                  fix=f"install a CUDA build of {subject}")


@dataclass
class _Fit:
    """How the libraries fit the GPUs: gaps of the deciding libraries (problems), of the others (notes),
    and how the first deciding library runs on each GPU (covered)."""

    deciding: list[Architectures]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    first: tuple[str, str] | None = None  # the first GPU a deciding library has no code for: (name, "8.6")

    def add(self, name: str, capability: tuple[int, int], lib: Architectures) -> None:
        """One GPU against one library."""
        how = lib.runs_on(capability)
        if how is not None:
            if lib is self.deciding[0]:
                self.covered.append(f"{name}: {how}")
            return
        cc = f"{capability[0]}.{capability[1]}"
        gap = f"{name} (compute capability {cc}, sm_{capability[0]}{capability[1]}): {lib.path} has {lib.describe()}"
        if lib in self.deciding:
            self.first = self.first or (name, cc)
            self.problems.append(gap)
        else:
            self.notes.append(gap)
