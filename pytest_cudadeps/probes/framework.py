"""The framework probe: a framework other than torch imported in a child as the user's job imports it, made to
open its CUDA libraries its own way, then asked for its GPUs and a tiny computation
(:mod:`pytest_cudadeps.probes.child.framework`).

What the child then maps is the truth the ``lazy[...]`` predictions of that framework's libraries are held to,
as torch's linkage is held to ``import torch``.  One child per framework: they run side by side with torch's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_cudadeps.probes.child.protocol import FrameworkDevices, FrameworkFacts, FrameworkRequest
from pytest_cudadeps.probes.runner import Blame, ChildGroup, decoded, run_probe
from pytest_cudadeps.tables.frameworks import Framework, recipe_of

MODULE = "pytest_cudadeps.probes.child.framework"


@dataclass(frozen=True)
class FrameworkRun:
    """The child's answers, or the blame for the step it died or hung in (``devices`` is None when not asked)."""

    framework: Framework
    facts: FrameworkFacts | Blame
    devices: FrameworkDevices | Blame | None

    def mapped(self, soname: str) -> str | None:
        """Where the framework's process mapped ``soname`` (a file of that name, or a link of that name to it)."""
        if not isinstance(self.facts, FrameworkFacts):
            return None
        loaded = [os.path.normpath(path) for path in self.facts.loaded]
        return next((path for path in loaded if os.path.basename(path) == soname), None) or next(
            (path for path in loaded if os.path.basename(path).startswith(soname + ".")), None)


def probe_framework(
    framework: Framework,
    *,
    timeout: float,
    devices: bool = True,
    paths: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    inhibit_ld_cache: bool = False,
    group: ChildGroup | None = None,
    executable: str | None = None,
) -> FrameworkRun:
    """Import the framework in a child and make it open its libraries; with ``devices``, its GPUs and a product.

    ``executable`` is the checked environment's own Python: CuPy's and numba-cuda's cuda.pathfinder (1.9.1) search
    ``site.getsitepackages()``, which only that interpreter answers as the user's job would."""
    run = run_probe(MODULE, FrameworkRequest(recipe_of(framework), devices=devices), timeout=timeout, paths=paths,
                    env=env, inhibit_ld_cache=inhibit_ld_cache, group=group, executable=executable)
    trouble = run.trouble()
    # one child: a framework whose import kills it would kill the next one too
    blamed = {step: Blame(trouble + ("" if step == run.current else f" while in {run.current or 'its start'}"),
                          run.stderr_tail())
              for step in ("import", "devices") if trouble is not None and step not in run.results}
    facts = decoded(FrameworkFacts, "import", run.results, blamed)
    asked = devices and isinstance(facts, FrameworkFacts) and facts.error is None
    return FrameworkRun(framework, facts, decoded(FrameworkDevices, "devices", run.results, blamed) if asked else None)
