"""The ``cuda-major[ROOT]`` finding: torch is a CUDA build, and no wheel of another CUDA major sits beside it or
beside a framework root of :data:`~pytest_cudadeps.tables.frameworks.FRAMEWORKS` (jax[cuda12], cupy-cuda12x...),
whose major is its build's."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.engine.build import Build, cuda_major_of
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.installers import install_command, reinstall_command, uninstall_command
from pytest_cudadeps.engine.requirements import Demand
from pytest_cudadeps.tables.frameworks import Framework

Demands = Mapping[str, Sequence[Demand]]
_SUFFIX = re.compile(r"-cu\d+$")


def _other_majors(env: Environment, major: int) -> list[tuple[Distribution, int]]:
    others = []
    for other in env.distributions:
        found = cuda_major_of(other)
        if found is not None and found != major and env.get(other.key) is other:
            others.append((other, found))
    return others


def framework_finding(env: Environment, dist: Distribution, framework: Framework, demands: Demands) -> Finding:
    """``cuda-major[ROOT]`` of a framework root: every installed CUDA wheel is for its build's major."""
    major = int(framework.cuda)
    source = f"{framework.marker} (the {framework.key} build installed: CUDA {framework.cuda})"
    others = _other_majors(env, major)
    if others:
        return _mixed(env, dist, framework.cuda, source, [d for d, _ in others], others[0][1], demands)
    return passed("cuda-major", dist.key, f"{dist} is a CUDA {framework.cuda} build ({framework.marker}); no wheel "
                                          f"of another CUDA major is installed", cuda=framework.cuda)


def build_finding(env: Environment, dist: Distribution, build: Build | str, demands: Demands | None = None) -> Finding:
    """``cuda-major[torch]``: torch is a CUDA build, and every installed CUDA wheel is for the same major."""
    if isinstance(build, str):
        return failed(
            "cuda-major", dist.key, f"cannot tell which CUDA {dist} was built for: {build}",
            fix=f"reinstall it: {reinstall_command(dist.installer, f'{dist.name}=={dist.version}')}",
        )
    if build.cuda_major is None:
        return skipped(
            "cuda-major", dist.key,
            f"{dist.name} {dist.version} is a CPU-only build ({build.version_file}: cuda = None)",
        )
    others = _other_majors(env, build.cuda_major)
    if others:
        return _mixed(env, dist, build.cuda or "", f"read from {build.version_file}", [d for d, _ in others],
                      others[0][1], demands or {})
    return passed(
        "cuda-major", dist.key, f"{dist} is a CUDA {build.cuda} build; no wheel of another CUDA major is installed",
        cuda=build.cuda or "", version_file=str(build.version_file),
    )


def _mixed(env: Environment, dist: Distribution, cuda: str, source: str, others: list[Distribution], major: int,
           demands: Demands) -> Finding:
    """Wheels of another major beside the build: uninstall them, then put back, without their dependencies, the
    wheels of the build's major whose files they overwrote (the same paths in both RECORDs: nvidia/nccl/lib/
    libnccl.so.2 is in nvidia-nccl-cu12's and nvidia-nccl-cu13's), and install the required wheels of the build's
    major that they replaced (nvidia-cudnn-cu13 where nvidia-cudnn-cu12 is required and missing).  Reinstalling the
    root with its dependencies would download every wheel again and is not needed; one that shares no file needs no
    reinstall."""
    overwritten, shared = _sharing(env, others)
    replaced = _replaced(env, others, demands)
    fix = " && ".join(
        [*(uninstall_command(dist.installer, other.name) for other in others),
         *(reinstall_command(dist.installer, f"{victim.name}=={victim.version}") for victim in overwritten),
         *([install_command(dist.installer, *(spec for _, spec in replaced))] if replaced else [])])
    return failed(
        "cuda-major", dist.key,
        f"{dist} is a CUDA {cuda} build, but CUDA {major} wheels are installed beside it: "
        + ", ".join(f"{other} (CUDA {major})" for other in others),
        f"{source}; wheels of two CUDA majors share folders under nvidia/ and overwrite each other's libraries, or "
        f"are searched together (cuda.pathfinder tries nvidia/cu13/lib before nvidia/<component>/lib)",
        *([f"overwritten: {', '.join(shared)} of {', '.join(str(v) for v in overwritten)}"] if overwritten else []),
        *([f"in place of: {', '.join(key for key, _ in replaced)} (required, not installed)"] if replaced else []),
        fix=fix, others=",".join(str(other) for other in others), sonames=",".join(shared),
        replaced=",".join(key for key, _ in replaced),
        ships=",".join(sorted({path.name for other in others for path in _paths(other)})),
    )


def _replaced(env: Environment, others: list[Distribution], demands: Demands) -> list[tuple[str, str]]:
    """The required, missing wheels of the build's major that ``others`` stand in for (their names without the
    ``-cuNN`` suffix agree), each with what to install."""
    bases = {_SUFFIX.sub("", other.key) for other in others}
    return [(found[0].requirement.name, found[0].wanted()) for key, found in sorted(demands.items())
            if found and env.get(key) is None and _SUFFIX.sub("", key) in bases]


def _paths(dist: Distribution) -> set[Path]:
    return {path for path, _ in dist.owned_files(".so")}


def _sharing(env: Environment, others: list[Distribution]) -> tuple[list[Distribution], list[str]]:
    """The installed distributions, not among ``others``, that list a shared object one of ``others`` lists, and
    the names of those shared objects; each RECORD read once."""
    theirs = set().union(*(_paths(other) for other in others))
    keys = {other.key for other in others}
    overwritten: list[Distribution] = []
    shared: set[str] = set()
    for dist in env.distributions:
        if dist.key in keys or env.get(dist.key) is not dist:
            continue
        common = theirs & _paths(dist)
        if common:
            overwritten.append(dist)
            shared.update(path.name for path in common)
    return overwritten, sorted(shared)
