"""The ``arch[ROOT]`` finding: every GPU's compute capability is among the architectures compiled into the
root's libraries (their ``.nv_fatbin``, :mod:`pytest_cudadeps.engine.fatbin`), as cubin or as PTX to JIT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_cudadeps.checks.findings import Finding, failed, passed

if TYPE_CHECKING:
    pass
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
        names = ", ".join(lib.path.name for lib in libraries) or "none"
        return failed(CHECK, subject, f"no GPU code found in the {SECTION} sections of {subject}'s libraries ({names})",
                      fix=f"install a CUDA build of {subject}")
    deciding = [lib for lib in carrying if lib.path.name == primary] or carrying
    problems: list[str] = []
    notes: list[str] = []
    covered: list[str] = []
    first: tuple[str, str] | None = None
    for name, capability in gpus:
        cc = f"{capability[0]}.{capability[1]}"
        for lib in carrying:
            how = lib.runs_on(capability)
            gap = (f"{name} (compute capability {cc}, sm_{capability[0]}{capability[1]}): "
                   f"{lib.path} has {lib.describe()}")
            if how is None and lib in deciding:
                first = first or (name, cc)
                problems.append(gap)
            elif how is None:
                notes.append(gap)
            elif lib is deciding[0]:
                covered.append(f"{name}: {how}")
    if first is not None:
        name, cc = first
        return failed(
            CHECK, subject, f"{subject} has no code for {name} (compute capability {cc})", *problems, *notes,
            fix=f"install a {subject} build compiled for compute capability {cc} (a newer release, or a "
                f"source build with TORCH_CUDA_ARCH_LIST={cc})",
            architectures=deciding[0].describe(),
        )
    summary = "; ".join(covered)
    if notes:
        summary += f"; note, kernels of these libraries would be missing: {' | '.join(notes)}"
    return passed(CHECK, subject, summary, architectures=deciding[0].describe())
