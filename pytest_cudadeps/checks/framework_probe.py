"""The ``framework[KEY]`` findings: a framework other than torch, imported in a child as the user's job imports it,
opened its CUDA libraries its own way, and (on a host with GPUs) listed them and computed a product right.

The child's answer (:class:`~pytest_cudadeps.probes.framework.FrameworkRun`) is the truth: a library the framework
needs and did not open fails here with the framework's own words (``Unable to load cuDNN. Is it installed?``),
whatever the static model predicted; where it opened each library is what the ``lazy[...]`` items of that
framework are held to (:func:`pytest_cudadeps.checks.load.held_to`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cudadeps.checks.findings import Finding, Outcome, failed, passed
from pytest_cudadeps.probes.child.protocol import FrameworkDevices, FrameworkFacts
from pytest_cudadeps.probes.driver import Gpu
from pytest_cudadeps.probes.framework import FrameworkRun
from pytest_cudadeps.probes.runner import Blame
from pytest_cudadeps.tables.frameworks import OPENS_ONLY_WITH_A_GPU, Framework

if TYPE_CHECKING:
    from pytest_cudadeps.engine.distributions import Distribution

CHECK = "framework"
_RERUN = "nothing in this environment: rerun the check; if it is killed again, look at `dmesg` (out of memory?)"


def _module(framework: Framework) -> str:
    return "numba.cuda" if framework.key == "numba-cuda" else framework.key.split("-")[0]


def _blamed(framework: Framework, what: str, blame: Blame, fix: str) -> Finding:
    if blame.trouble.startswith("killed from outside"):
        fix = _RERUN
    elif blame.trouble.startswith("hung"):
        fix = f"raise --cuda-deps-timeout if this host is just slow; otherwise {fix}"
    return failed(CHECK, framework.key, f"{what} {blame.trouble}", *blame.stderr, fix=fix)


def framework_finding(framework: Framework, run: FrameworkRun, gpus: Sequence[Gpu] | Finding, *,
                      fixes: Mapping[str, str], reinstall: str, dist: Distribution) -> Finding:
    """``framework[KEY]``: the import, the libraries it opened (``fixes``: each library's fix, from its ``lazy[...]``
    item), then on the GPUs (``gpus``: the driver's, or the skip that says why there are none) its devices and the
    product.  ``reinstall`` puts the framework (``dist``) and its CUDA extra back."""
    module = _module(framework)
    name = f"{dist.name} {dist.version}"
    facts = run.facts
    if isinstance(facts, Blame):
        return _blamed(framework, f"`import {module}` (then opening its CUDA libraries)", facts, reinstall)
    if facts.error is not None:
        return failed(CHECK, framework.key, f"`import {module}` fails: {facts.error}", *facts.said, fix=reinstall)
    opens_now = not isinstance(gpus, Finding) or framework.key not in OPENS_ONLY_WITH_A_GPU
    missing = [lib.soname for lib in framework.libraries if not lib.optional and run.mapped(lib.soname) is None]
    if opens_now and missing:
        said = f"; it says: {_first_line(facts.refused)}" if facts.refused else ""
        return failed(CHECK, framework.key, f"{name} opened its CUDA libraries without {', '.join(missing)}{said}",
                      *facts.said, fix=fixes.get(missing[0]) or reinstall, missing=",".join(missing))
    opened = f"{name}: {_opened(framework, run, dist.location)}"
    if isinstance(gpus, Finding):  # no GPU: the libraries are checked, the devices cannot be
        if gpus.outcome is Outcome.FAIL:  # --cuda-deps-require-gpu
            return gpus
        return passed(CHECK, framework.key, f"{opened}; its devices and a product not run ({gpus.message})",
                      said=_first_line(facts.refused or ""))
    return _on_the_gpus(framework, module, facts, run.devices, opened, reinstall)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def _opened(framework: Framework, run: FrameworkRun, site: Path) -> str:
    """Where the framework opened its libraries, in a few words: the folders (under its site-packages folder, or
    whole), each with how many."""
    folders: dict[str, int] = {}
    for lib in framework.libraries:
        path = run.mapped(lib.soname)
        if path is not None:
            folder = os.path.dirname(path)
            if folder.startswith(f"{site}/"):
                folder = folder[len(str(site)) + 1:]
            folders[folder] = folders.get(folder, 0) + 1
    if not folders:
        return "it opened none of its CUDA libraries yet"
    total = sum(folders.values())
    return f"opened {total} CUDA libraries from " + ", ".join(f"{folder} ({n})" for folder, n in folders.items())


def _on_the_gpus(framework: Framework, module: str, facts: FrameworkFacts, devices: FrameworkDevices | Blame | None,
                 opened: str, reinstall: str) -> Finding:
    if devices is None:
        return passed(CHECK, framework.key, f"{opened}; {module} has no device list of its own")
    if isinstance(devices, Blame):
        return _blamed(framework, f"{module} listing its GPUs and computing a product", devices, reinstall)
    if devices.error is not None or not devices.devices:
        said = (_first_line(facts.refused),) if facts.refused else ()
        return failed(CHECK, framework.key, f"{module} sees no GPU although the driver does: {devices.error}",
                      *said, *facts.said, fix=reinstall)
    if not devices.computed:
        return failed(CHECK, framework.key, f"{module} on {devices.devices[0]}: a product of ones came out wrong: "
                                            f"{devices.failure}", fix=reinstall)
    return passed(CHECK, framework.key, f"{opened}; {len(devices.devices)} GPU(s) "
                                        f"({', '.join(devices.devices)}), a product on the first right")

