"""The ``cuda-major[torch]`` finding: torch is a CUDA build, and no wheel of another CUDA major sits beside it."""

from __future__ import annotations

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
        names = ", ".join(f"{d} (CUDA {m})" for d, m in others)
        return failed(
            "cuda-major", dist.key,
            f"{dist} is a CUDA {build.cuda} build, but CUDA {others[0][1]} wheels are installed beside it: {names}",
            f"read from {build.version_file}; wheels of two CUDA majors share folders under nvidia/ and overwrite each other's libraries",
            fix=" && ".join(uninstall_command(dist.installer, d.name) for d, _ in others)
            + f", then reinstall {dist.name} and its wheels to restore the files they overwrote: "
            + reinstall_command(dist.installer, f"{dist.name}=={dist.version}", deps=True),
        )
    return passed(
        "cuda-major", dist.key, f"{dist} is a CUDA {build.cuda} build; no wheel of another CUDA major is installed",
        cuda=build.cuda or "", version_file=str(build.version_file),
    )
