"""The ``load[...]`` findings, and the loader as the referee of the ``linkage[...]`` ones.

The torch child imports torch first, as the user's job does, then asks for each library the walk
resolved: one the import mapped is answered from where the loader really mapped it.  That answer is
the truth.  :func:`load_finding` words it for the ``load[...]`` item; :func:`held_to_the_loader` holds a
``linkage[...]`` finding, the static model's prediction, against it: where the two disagree the loader is
the verdict, and the finding says that the model was wrong.  Only a problem of which file the loader takes
is settled so; one of what is in the file (bytes another wheel overwrote, symbol versions) stands.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pytest_cudadeps.checks.findings import INSTALL_DRIVER, Finding, Outcome, failed, passed, unavailable
from pytest_cudadeps.checks.linkage import WHICH_FILE
from pytest_cudadeps.probes.child.protocol import Loaded
from pytest_cudadeps.probes.load import LoadResult, LoadStep
from pytest_cudadeps.probes.runner import Blame
from pytest_cudadeps.tables.wheels import DRIVER_SONAMES  # missing one means "no driver", not "broken wheel"

CHECK = "load"
MAPPED_BY_IMPORT = "already mapped"  # the child's word for a library the import had mapped before it was asked


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _is_one_of(path: str, files: Sequence[Path]) -> bool:
    return any(same_file(path, known) for known in files)


def needs_the_driver(error: str) -> str | None:
    """The driver's library a dlopen error says is missing (``libcuda.so.1: cannot open shared object file``)."""
    return next((soname for soname in DRIVER_SONAMES
                 if f"{soname}: cannot open shared object file" in error), None)


def load_finding(step: LoadStep, result: LoadResult, *, require_gpu: bool = False) -> Finding:
    """The item's finding for one step: how the child died in it, dlopen's error, or where the library was mapped."""
    if isinstance(result, Blame):
        return _blamed(step, result)
    if not result.ok:
        return _not_loaded(step, result.error or "unknown error", require_gpu)
    return _mapped(step, result)


def _fix(step: LoadStep) -> str:
    return step.fix or f"reinstall the wheel that provides {step.soname or step.target}"


def _blamed(step: LoadStep, result: Blame) -> Finding:
    if result.trouble.startswith("killed from outside"):
        fix = "nothing in this environment: rerun the check; if it is killed again, look at `dmesg` (out of memory?)"
    elif result.trouble.startswith("hung"):
        fix = f"raise --cuda-deps-timeout if this host is just slow; otherwise {_fix(step)}"
    else:
        fix = f"{_fix(step)}; check LD_PRELOAD and LD_LIBRARY_PATH for a foreign copy"
    return failed(CHECK, step.name, f"loading {step.target} {result.trouble}", *result.stderr, fix=fix,
                  target=step.target)


def _not_loaded(step: LoadStep, error: str, require_gpu: bool) -> Finding:
    driver = needs_the_driver(error)
    if driver is not None:
        what = (f"{driver} not found" if step.soname == driver
                else f"{step.soname or step.target} cannot load: it needs {driver}")
        return unavailable(CHECK, step.name, f"{what}: no NVIDIA driver on this host ({error})",
                           require_gpu=require_gpu, fix=INSTALL_DRIVER)
    return failed(CHECK, step.name, f"dlopen({step.target}) failed: {error}", fix=_fix(step), target=step.target)


def _mapped(step: LoadStep, result: Loaded) -> Finding:
    what = step.soname or step.target
    mapped = os.path.normpath(result.mapped) if result.mapped else None
    if mapped is None or step.predicted is None or same_file(mapped, step.predicted):
        return passed(CHECK, step.name, f"{mapped or '?'} ({result.how})", mapped=mapped or "?", how=result.how)
    if _is_one_of(mapped, step.accepted):
        return passed(CHECK, step.name, f"{mapped} ({result.how}); the static model predicted {step.predicted}: "
                                        f"the model was wrong, the loader maps the declared wheel's copy",
                      mapped=mapped, how=result.how, predicted=str(step.predicted), model="wrong")
    wheel = f", not the declared wheel's {step.accepted[0]}" if step.accepted else ""
    return failed(
        CHECK, step.name, f"{what} was mapped from {mapped} ({result.how}){wheel}",
        f"the static model predicted {step.predicted}; {os.path.realpath(mapped)} is a different file",
        fix=(f"remove {os.path.dirname(mapped)} from LD_LIBRARY_PATH and LD_PRELOAD, or uninstall the copy there"
             if not step.accepted else _fix(step)),
        mapped=mapped, predicted=str(step.predicted), how=result.how,
    )


def held_to_the_loader(static: Finding, step: LoadStep, result: LoadResult, *, import_worked: bool) -> Finding:
    """A ``linkage[...]`` finding held against where ``import torch`` really mapped its library.

    Only an answer the import gave counts (``already mapped``, with the import worked): the static finding
    stands otherwise.  See :func:`held_to` for the verdict.
    """
    if not (import_worked and isinstance(result, Loaded) and result.ok and result.mapped
            and result.how == MAPPED_BY_IMPORT):
        return static
    return held_to(static, step.soname or step.target, result.mapped, step.accepted, by="`import torch`",
                   fix=_fix(step))


def held_to(static: Finding, soname: str, mapped: str, accepted: Sequence[Path], *, by: str, fix: str = "") -> Finding:
    """A static finding about which file ``soname`` is (``linkage[...]``, ``lazy[...]``) held against the file a
    real process mapped (``by``: what made it map it, ``import torch`` or ``jax's own loading``).

    The model and the loader agree: the finding stands, with the truth as a fact.  They disagree: the loader
    is the verdict, a pass when it mapped the declared wheel's copy (one of ``accepted``), a failure when it
    mapped another file, and the text says that the model was wrong.  Only a problem of which file the loader
    takes is settled so; one of what is in the file (its bytes, its versions) stands.
    """
    kinds = set(filter(None, dict(static.facts).get("problem", "").split(",")))
    if not kinds <= set(WHICH_FILE):
        return static
    mapped = os.path.normpath(mapped)
    predicted = dict(static.facts).get("path") or ""
    if predicted and same_file(mapped, predicted):
        return replace(static, facts=(*static.facts, ("loader", f"agrees: mapped after {by}")))
    if _is_one_of(mapped, accepted):
        if static.outcome is Outcome.PASS:
            return replace(static, facts=(*static.facts, ("loader", f"mapped {mapped}")))
        return passed(static.check, static.subject,
                      f"{soname} -> {mapped} after {by} (the declared wheel's copy); the static model "
                      f"was wrong: {static.message}", path=mapped, loader="disagrees: the model was wrong",
                      model="wrong")
    return failed(static.check, static.subject,
                  f"{soname} is mapped from {mapped} after {by}, not from "
                  f"{accepted[0] if accepted else 'the declared wheel'}: a foreign library "
                  f"(the static model predicted {predicted or 'nothing'})",
                  *static.details, fix=static.fix or fix or f"reinstall the wheel that provides {soname}", path=mapped,
                  model="wrong")
