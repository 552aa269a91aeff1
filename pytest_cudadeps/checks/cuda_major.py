"""The ``cuda-major[torch]`` finding: torch is a CUDA build, and no wheel of another CUDA major sits beside it."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.engine.build import Build, cuda_major_of
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.installers import reinstall_command, uninstall_command


def build_finding(env: Environment, dist: Distribution, build: Build | str) -> Finding:
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
    others = []
    for other in env.distributions:
        major = cuda_major_of(other)
        if major is not None and major != build.cuda_major and env.get(other.key) is other:
            others.append((other, major))
    if others:
        return _mixed(env, dist, build, [d for d, _ in others], others[0][1])
    return passed(
        "cuda-major", dist.key, f"{dist} is a CUDA {build.cuda} build; no wheel of another CUDA major is installed",
        cuda=build.cuda or "", version_file=str(build.version_file),
    )


def _mixed(env: Environment, dist: Distribution, build: Build, others: list[Distribution], major: int) -> Finding:
    """Wheels of another major beside the build: uninstall them, then put back, without their dependencies, the
    wheels of the build's major whose files they overwrote (the same paths in both RECORDs: nvidia/nccl/lib/
    libnccl.so.2 is in nvidia-nccl-cu12's and nvidia-nccl-cu13's).  Reinstalling torch with its dependencies would
    download every wheel again and is not needed; one that shares no file needs no reinstall."""
    overwritten, shared = _sharing(env, others)
    fix = " && ".join(
        [*(uninstall_command(dist.installer, other.name) for other in others),
         *(reinstall_command(dist.installer, f"{victim.name}=={victim.version}") for victim in overwritten)])
    return failed(
        "cuda-major", dist.key,
        f"{dist} is a CUDA {build.cuda} build, but CUDA {major} wheels are installed beside it: "
        + ", ".join(f"{other} (CUDA {major})" for other in others),
        f"read from {build.version_file}; wheels of two CUDA majors share folders under nvidia/ and overwrite each "
        f"other's libraries",
        *([f"overwritten: {', '.join(shared)} of {', '.join(str(v) for v in overwritten)}"] if overwritten else []),
        fix=fix, others=",".join(str(other) for other in others), sonames=",".join(shared),
    )


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
